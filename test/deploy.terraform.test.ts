import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse } from '@cdktf/hcl2json';
import { parse as parseYaml } from 'yaml';
import { TOPIC_ROOT } from '../src/modules/terminals/topics.ts';

// deploy/terraform cannot be planned here (no AWS account, no provider downloads). Every .tf file
// is parsed (@cdktf/hcl2json, HashiCorp's HCL parser compiled to WebAssembly), the module wiring
// is checked (every module used, every argument declared, every required variable given, every
// module output referenced exists), and the PCI DSS settings are checked as policies.

const TF = join(import.meta.dirname, '..', 'deploy', 'terraform');
type Block = Record<string, any>;
interface Dir {
  path: string;
  variables: Record<string, Block>;
  outputs: Record<string, Block>;
  modules: Record<string, Block>;
  resources: { type: string; name: string; body: Block; file: string }[];
  text: string;
}

function tfFiles(dir: string, out: string[] = []): string[] {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) tfFiles(p, out);
    else if (n.endsWith('.tf')) out.push(p);
  }
  return out;
}

const dirs = new Map<string, Dir>();
before(async () => {
  for (const file of tfFiles(TF)) {
    const d = dirs.get(dirname(file)) ?? {
      path: dirname(file),
      variables: {},
      outputs: {},
      modules: {},
      resources: [],
      text: '',
    };
    dirs.set(dirname(file), d);
    const text = readFileSync(file, 'utf8');
    d.text += text;
    const j = (await parse(file, text)) as Block;
    for (const [k, v] of Object.entries(j.variable ?? {})) d.variables[k] = (v as Block[])[0];
    for (const [k, v] of Object.entries(j.output ?? {})) d.outputs[k] = (v as Block[])[0];
    for (const [k, v] of Object.entries(j.module ?? {})) d.modules[k] = (v as Block[])[0];
    for (const [type, byName] of Object.entries(j.resource ?? {})) {
      for (const [name, bodies] of Object.entries(byName as Block))
        d.resources.push({ type, name, body: (bodies as Block[])[0], file: relative(TF, file) });
    }
  }
});

const all = () => [...dirs.values()].flatMap((d) => d.resources);
const ofType = (type: string) => all().filter((r) => r.type === type);
const where = (r: { type: string; name: string; file: string }) => `${r.file}: ${r.type}.${r.name}`;
const block = (b: Block, name: string): Block | undefined => (Array.isArray(b[name]) ? b[name][0] : b[name]);

describe('deploy/terraform', () => {
  test('every file parses, and every module is wired into the production environment', () => {
    const modules = readdirSync(join(TF, 'modules'));
    assert.ok(modules.length >= 12, `${modules.length} modules`);
    const prod = dirs.get(join(TF, 'envs', 'prod'))!;
    assert.ok(prod, 'envs/prod exists');
    const used = new Set(
      Object.values(prod.modules).map((m) => relative(join(TF, 'modules'), resolve(prod.path, m.source))),
    );
    for (const m of modules) assert.ok(used.has(m), `module ${m} is used by envs/prod`);
  });

  test('every module call gives declared arguments, all required variables, and reads existing outputs', () => {
    for (const d of dirs.values()) {
      for (const [call, m] of Object.entries(d.modules)) {
        const target = dirs.get(resolve(d.path, m.source));
        assert.ok(target, `${call}: ${m.source} exists`);
        const given = Object.keys(m).filter(
          (k) => !['source', 'providers', 'depends_on', 'count', 'for_each'].includes(k),
        );
        for (const k of given) assert.ok(k in target!.variables, `module.${call}: "${k}" is a variable of ${m.source}`);
        for (const [k, v] of Object.entries(target!.variables))
          if (!('default' in v)) assert.ok(given.includes(k), `module.${call}: required variable "${k}" is given`);
        // A module that uses a second provider declares it, and the caller passes it.
        if (/configuration_aliases/.test(target!.text))
          assert.ok(m.providers?.['aws.dr'], `module.${call} passes aws.dr`);
      }
      for (const [, call, out] of d.text.matchAll(/module\.(\w+)\.(\w+)/g)) {
        const m = d.modules[call];
        assert.ok(m, `${relative(TF, d.path)}: module.${call} is declared`);
        assert.ok(
          out in dirs.get(resolve(d.path, m.source))!.outputs,
          `${relative(TF, d.path)}: module.${call} has output "${out}"`,
        );
      }
      for (const [, v] of d.text.matchAll(/\bvar\.(\w+)/g))
        assert.ok(v in d.variables, `${relative(TF, d.path)}: var.${v} is declared`);
    }
  });

  test('formatting: terraform fmt (when terraform is installed)', (t) => {
    const r = spawnSync('terraform', ['fmt', '-check', '-recursive', TF], { encoding: 'utf8' });
    if (r.error) return t.skip('terraform is not installed');
    assert.equal(r.status, 0, `terraform fmt would change: ${r.stdout}`);
  });

  test('encryption with customer-managed keys, and rotation on', () => {
    for (const k of ofType('aws_kms_key')) assert.equal(k.body.enable_key_rotation, true, `${where(k)} rotates`);
    const cmk = (v: unknown) => typeof v === 'string' && /kms|key_arn/.test(v) && !/alias\/aws\//.test(v);
    for (const r of ofType('aws_db_instance')) {
      assert.equal(r.body.storage_encrypted, true, where(r));
      assert.ok(cmk(r.body.kms_key_id), `${where(r)}: a customer-managed key`);
    }
    for (const r of ofType('aws_elasticache_replication_group')) {
      for (const k of [
        'transit_encryption_enabled',
        'at_rest_encryption_enabled',
        'multi_az_enabled',
        'automatic_failover_enabled',
      ])
        assert.equal(r.body[k], true, `${where(r)}: ${k}`);
      assert.ok(cmk(r.body.kms_key_id) && r.body.auth_token, `${where(r)}: key and AUTH token`);
    }
    for (const r of ofType('aws_eks_cluster')) {
      const enc = block(r.body, 'encryption_config')!;
      assert.deepEqual(enc.resources, ['secrets']);
      assert.ok(cmk(block(enc, 'provider')!.key_arn), `${where(r)}: secrets under a customer-managed key`);
    }
    for (const r of ofType('aws_secretsmanager_secret')) assert.ok(cmk(r.body.kms_key_id), `${where(r)}`);
    for (const r of ofType('aws_cloudwatch_log_group')) assert.ok(cmk(r.body.kms_key_id), `${where(r)}`);
    for (const r of ofType('aws_sns_topic')) assert.ok(cmk(r.body.kms_master_key_id), `${where(r)}`);
    for (const r of ofType('aws_cloudtrail')) assert.ok(cmk(r.body.kms_key_id), `${where(r)}`);
    for (const r of ofType('aws_ecr_repository'))
      assert.equal(block(r.body, 'encryption_configuration')!.encryption_type, 'KMS');
    for (const r of ofType('aws_launch_template'))
      assert.equal(block(block(r.body, 'block_device_mappings')!, 'ebs')!.encrypted, true);
    // Every bucket is encrypted with KMS and closed to the public.
    const buckets = ofType('aws_s3_bucket');
    assert.ok(buckets.length >= 3);
    for (const b of buckets) {
      const sameDir = all().filter((r) => r.file === b.file);
      const sse = sameDir.find(
        (r) =>
          r.type === 'aws_s3_bucket_server_side_encryption_configuration' &&
          (r.body.bucket.includes(`aws_s3_bucket.${b.name}.`) ||
            r.body.for_each?.includes?.(`aws_s3_bucket.${b.name}`)),
      );
      assert.ok(sse, `${where(b)} has default encryption`);
      const rule = block(block(sse!.body, 'rule')!, 'apply_server_side_encryption_by_default')!;
      assert.equal(rule.sse_algorithm, 'aws:kms');
      assert.ok(cmk(rule.kms_master_key_id));
      assert.ok(
        sameDir.some(
          (r) =>
            r.type === 'aws_s3_bucket_public_access_block' &&
            (r.body.bucket.includes(`aws_s3_bucket.${b.name}.`) ||
              r.body.for_each?.includes?.(`aws_s3_bucket.${b.name}`)) &&
            r.body.restrict_public_buckets === true,
        ),
        `${where(b)} blocks public access`,
      );
    }
    // Rotation: KMS yearly, the database password by the RDS rotation function.
    const rot = ofType('aws_secretsmanager_secret_rotation');
    assert.ok(
      rot.some((r) => r.body.secret_id.includes('"DATABASE"')),
      'the database password rotates',
    );
    for (const r of rot)
      assert.ok(
        block(r.body, 'rotation_rules')!.automatically_after_days <= 90 ||
          /var\./.test(block(r.body, 'rotation_rules')!.automatically_after_days),
      );
  });

  test('tamper-proof logs: CloudTrail in every region with validation, Object Lock in compliance mode', () => {
    const [trail] = ofType('aws_cloudtrail');
    assert.equal(trail.body.is_multi_region_trail, true);
    assert.equal(trail.body.enable_log_file_validation, true);
    assert.equal(trail.body.include_global_service_events, true);
    const locked = ofType('aws_s3_bucket').filter((b) => b.body.object_lock_enabled === true);
    assert.ok(
      locked.some((b) => b.file.startsWith('modules/audit_logging') && b.body.for_each === '${local.buckets}'),
      "CloudTrail's and the audit archive's buckets are locked",
    );
    assert.ok(
      locked.some((b) => b.file.startsWith('envs/prod')),
      'and their copies in the DR region',
    );
    for (const c of ofType('aws_s3_bucket_object_lock_configuration')) {
      const ret = block(block(c.body, 'rule')!, 'default_retention')!;
      assert.equal(ret.mode, 'COMPLIANCE', where(c));
      assert.ok(typeof ret.days === 'string' || ret.days >= 365, `${where(c)}: a year at least`);
    }
    const audit = readFileSync(join(TF, 'modules', 'audit_logging', 'main.tf'), 'utf8');
    assert.match(
      audit,
      /audit\s*=\s*"\$\{var\.name\}-audit-worm"/,
      'the audit archive bucket is one of the locked ones',
    );
  });

  test('no ingress from 0.0.0.0/0 except the load balancer on 443; databases private', () => {
    for (const sg of ofType('aws_security_group')) {
      for (const rule of [sg.body.ingress ?? []].flat()) {
        if ((rule.cidr_blocks ?? []).includes('0.0.0.0/0') || (rule.ipv6_cidr_blocks ?? []).includes('::/0')) {
          assert.ok(rule.from_port === 443 && rule.to_port === 443, `${where(sg)}: open to the internet only on 443`);
        }
      }
    }
    for (const r of ofType('aws_security_group_rule').concat(ofType('aws_vpc_security_group_ingress_rule'))) {
      if (r.body.type === 'egress') continue;
      if ([r.body.cidr_blocks ?? r.body.cidr_ipv4].flat().includes('0.0.0.0/0'))
        assert.equal(r.body.from_port, 443, where(r));
    }
    for (const r of ofType('aws_db_instance')) assert.equal(r.body.publicly_accessible, false, where(r));
    for (const r of ofType('aws_eks_cluster')) assert.equal(block(r.body, 'vpc_config')!.endpoint_private_access, true);
    assert.ok(ofType('aws_default_security_group').length > 0, 'the default security group is emptied');
  });

  test('deletion protection on stateful resources; Multi-AZ, forced TLS, backups copied across regions', () => {
    const dbs = ofType('aws_db_instance');
    for (const r of dbs) {
      assert.equal(r.body.deletion_protection, true, where(r));
      assert.equal(r.body.skip_final_snapshot, false, where(r));
    }
    const primary = dbs.find((r) => r.file.startsWith('modules/rds'))!;
    assert.equal(primary.body.multi_az, true);
    assert.ok(/var\.backup_retention_days/.test(primary.body.backup_retention_period));
    const params = ofType('aws_db_parameter_group')[0].body.parameter as Block[];
    assert.ok(
      params.some((p) => p.name === 'rds.force_ssl' && p.value === '1'),
      'TLS is forced',
    );
    assert.ok(
      ofType('aws_db_instance_automated_backups_replication').length === 1,
      'backups are copied to the DR region',
    );
    const replica = dbs.find((r) => r.body.replicate_source_db)!;
    assert.equal(replica.body.provider, '${aws.dr}', 'the standby database lives in the DR region');
    for (const b of ofType('aws_s3_bucket')) assert.notEqual(b.body.force_destroy, true, where(b));
    for (const r of ofType('aws_secretsmanager_secret')) assert.ok(r.body.recovery_window_in_days >= 7);
    for (const k of ofType('aws_kms_key'))
      assert.ok(/var\./.test(k.body.deletion_window_in_days) || k.body.deletion_window_in_days >= 30);
  });

  test('edge and detection: WAF rules, ACM, ECR scanning, Config with PCI DSS, GuardDuty, Inspector, Macie, alarms', () => {
    const [acl] = ofType('aws_wafv2_web_acl');
    const waf = readFileSync(join(TF, 'modules', 'waf', 'main.tf'), 'utf8');
    for (const g of [
      'AWSManagedRulesCommonRuleSet',
      'AWSManagedRulesKnownBadInputsRuleSet',
      'AWSManagedRulesSQLiRuleSet',
    ])
      assert.ok(waf.includes(g), g);
    assert.ok(
      [acl.body.rule].flat().some((r: Block) => block(block(r, 'statement')!, 'rate_based_statement')),
      'a rate-based rule',
    );
    assert.ok(ofType('aws_wafv2_web_acl_logging_configuration').length === 1);
    assert.ok(ofType('aws_acm_certificate').length === 1);
    const [repo] = ofType('aws_ecr_repository');
    assert.equal(repo.body.image_tag_mutability, 'IMMUTABLE');
    assert.equal(block(repo.body, 'image_scanning_configuration')!.scan_on_push, true);
    const [pack] = ofType('aws_config_conformance_pack');
    const rules = parseYaml(
      readFileSync(join(TF, 'modules', 'compliance', 'pci-dss-conformance-pack.yaml'), 'utf8'),
    ).Resources;
    const ids = Object.values(rules).map((r: any) => r.Properties.Source.SourceIdentifier);
    for (const id of [
      'CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED',
      'RDS_STORAGE_ENCRYPTED',
      'CMK_BACKING_KEY_ROTATION_ENABLED',
      'S3_BUCKET_SSL_REQUESTS_ONLY',
      'ECR_PRIVATE_IMAGE_SCANNING_ENABLED',
      'ALB_WAF_ENABLED',
    ])
      assert.ok(ids.includes(id), id);
    assert.match(pack.body.template_body, /pci-dss-conformance-pack\.yaml/);
    assert.equal(ofType('aws_config_configuration_recorder')[0].body.recording_group[0].all_supported, true);
    assert.equal(ofType('aws_guardduty_detector')[0].body.enable, true);
    assert.ok(ofType('aws_inspector2_enabler')[0].body.resource_types.includes('ECR'));
    assert.equal(ofType('aws_macie2_account')[0].body.status, 'ENABLED');
    const alarms = ofType('aws_cloudwatch_metric_alarm');
    assert.ok(alarms.length >= 5);
    for (const a of alarms)
      assert.ok(String(a.body.alarm_actions).includes('aws_sns_topic.alarms'), `${where(a)} notifies`);
  });

  test('EKS: managed node groups, autoscaler tags, IRSA; IoT Core confines each terminal to its own topics', () => {
    const ng = ofType('aws_eks_node_group')[0];
    assert.equal(
      ng.body.tags.includes?.('cluster-autoscaler') ??
        JSON.stringify(ng.body.tags).includes('k8s.io/cluster-autoscaler/enabled'),
      true,
    );
    assert.ok(ofType('aws_iam_openid_connect_provider').length === 1, 'IRSA');
    assert.equal(block(ofType('aws_launch_template')[0].body, 'metadata_options')!.http_tokens, 'required', 'IMDSv2');
    const iot = ofType('aws_iot_policy').find((p) => p.name === 'terminal')!;
    const policy = iot.body.policy as string;
    const thing = '$${iot:Connection.Thing.ThingName}';
    assert.ok(
      policy.includes(`topic/${TOPIC_ROOT}/${thing}/req`),
      "publish: its own request topic (the broker ACL's rule)",
    );
    assert.ok(
      policy.includes(`topicfilter/${TOPIC_ROOT}/${thing}/res`) &&
        policy.includes(`topicfilter/${TOPIC_ROOT}/${thing}/evt`),
    );
    assert.ok(!/terminals\/\*|terminals\/\+/.test(policy), 'no wildcard over other terminals');
    assert.ok(ofType('aws_iot_ca_certificate')[0].body.active);
  });
});
