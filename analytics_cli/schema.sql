-- The analytics-cli store table. {table} is the quoted, possibly schema-qualified name.
-- Braces are doubled because this text is a psycopg.sql.SQL template.
-- Range-partitioned by month on "timestamp" (engines/postgresql/partitions.py creates the
-- months), so that prune drops whole months. The partition key is part of every unique key; rows of
-- a month without its own partition land in {default}, moved out when the month is made.
CREATE TABLE {table} (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    type          text        NOT NULL,
    count         numeric     NOT NULL,
    "timestamp"   timestamptz NOT NULL,
    collected_at  timestamptz NOT NULL DEFAULT now(),
    metadata      jsonb       NOT NULL DEFAULT '{{}}'::jsonb,
    PRIMARY KEY (id, "timestamp"),
    UNIQUE (type, "timestamp", metadata)
) PARTITION BY RANGE ("timestamp");
CREATE INDEX ON {table} (type, "timestamp");
CREATE TABLE {default} PARTITION OF {table} DEFAULT;
COMMENT ON TABLE {table} IS 'analytics-cli: one row per metric and collection slot';
