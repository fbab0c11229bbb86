-- Webhook deliveries and every attempt made for them (the webhook handler's record).

-- One row per delivery id (the receiver's idempotency key, sent as `X-Onex-Delivery`).
-- `url` holds no query and no credentials.
CREATE TABLE onex_webhook_deliveries (
    delivery_id TEXT        PRIMARY KEY,
    url         TEXT        NOT NULL,
    event       TEXT        NULL,
    status      TEXT        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every attempt: the receiver's HTTP status, or the error when it gave none.
CREATE TABLE onex_webhook_attempts (
    delivery_id TEXT        NOT NULL REFERENCES onex_webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt     INTEGER     NOT NULL,
    http_status INTEGER     NULL,
    error       TEXT        NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
