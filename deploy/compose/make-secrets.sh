#!/usr/bin/env bash
# Makes the secret files docker-compose.yml mounts (random, this machine only, never committed).
# Existing files are kept: the data encrypted or signed with them stays readable.
set -euo pipefail
dir="$(dirname "$0")/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
make() { [ -s "$dir/$1" ] || { node -e "process.stdout.write(require('crypto').randomBytes($2).toString('$3'))" > "$dir/$1"; chmod 644 "$dir/$1"; echo "made $dir/$1"; }; }
make db_password 24 hex
make bank_sim_secret 32 hex
make audit_signing_key 32 base64
make mfa_encryption_key 32 base64
make rewards_customer_key 32 base64
make grafana_admin_password 18 base64
