-- Merchants, their stores (merchant points) and the terminals in them.
CREATE SCHEMA IF NOT EXISTS merchants;

CREATE TABLE merchants.merchants (
  id             text        PRIMARY KEY,
  name           text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 99),   -- UPI "pn"
  vpa            text        NOT NULL UNIQUE CHECK (char_length(vpa) <= 255),        -- UPI "pa"
  mcc            char(4)     NOT NULL CHECK (mcc ~ '^[0-9]{4}$'),
  acquiring_bank text        NOT NULL,
  status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE merchants.stores (
  id          text        PRIMARY KEY,
  merchant_id text        NOT NULL REFERENCES merchants.merchants (id),
  name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 120),
  city        text,
  status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stores_by_merchant ON merchants.stores (merchant_id, id);

CREATE TABLE merchants.terminals (
  id          text        PRIMARY KEY,
  merchant_id text        NOT NULL REFERENCES merchants.merchants (id),
  store_id    text        NOT NULL REFERENCES merchants.stores (id),
  label       text,
  serial      text        UNIQUE,
  status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX terminals_by_merchant ON merchants.terminals (merchant_id, id);
CREATE INDEX terminals_by_store ON merchants.terminals (store_id, id);
