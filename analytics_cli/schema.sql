-- The analytics-cli store table. {table} is the quoted, possibly schema-qualified name.
-- Braces are doubled because this text is a psycopg.sql.SQL template.
CREATE TABLE {table} (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type          text        NOT NULL,
    count         numeric     NOT NULL,
    "timestamp"   timestamptz NOT NULL,
    collected_at  timestamptz NOT NULL DEFAULT now(),
    metadata      jsonb       NOT NULL DEFAULT '{{}}'::jsonb,
    UNIQUE (type, "timestamp", metadata)
);
CREATE INDEX ON {table} (type, "timestamp");
COMMENT ON TABLE {table} IS 'analytics-cli: one row per metric and collection slot';
