-- The reference schema as views over a brand's own tables (brand_tables.sql), in a schema of
-- their own (attentive_source). The engine reads only these seven names and their columns;
-- see src/attentive_sync/sources/SCHEMA.md for what each column means.
CREATE SCHEMA attentive_source;

CREATE VIEW attentive_source.customers AS
SELECT m.member_id              AS customer_id,
       m.mobile                 AS phone,
       m.email_address          AS email,
       m.member_id::text        AS client_user_id,
       m.shopify_customer_id::text AS shopify_id,
       NULL::text               AS klaviyo_id,
       m.first_name, m.last_name, m.city,
       m.region                 AS state,
       m.postcode               AS zip,
       m.country_code           AS country,
       m.birthday               AS date_of_birth,
       m.joined_at              AS enrolled_at,
       m.last_activity          AS last_activity_at,
       t.name                   AS tier,
       m.segment                AS insights_segment,
       array_to_json(m.categories)::text AS favorite_categories
FROM brand_shop.members m
LEFT JOIN brand_shop.tiers t ON t.id = m.tier_id;

CREATE VIEW attentive_source.audiences AS
SELECT list_key AS slug, title AS name, created AS created_at FROM brand_shop.lists;

CREATE VIEW attentive_source.audience_members AS
SELECT list_key AS audience_slug, member_id AS customer_id, added AS joined_at
FROM brand_shop.list_members;

CREATE VIEW attentive_source.points_ledger AS
SELECT txn_id AS entry_id,
       member_id AS customer_id,
       delta AS points,
       CASE reason WHEN 'earn' THEN 'earned' WHEN 'redeem' THEN 'spent' ELSE 'expired' END
           AS kind,
       CASE state WHEN 'cancelled' THEN 'void' ELSE state END AS status,
       created AS created_at,
       approved AS approved_at
FROM brand_shop.points;

CREATE VIEW attentive_source.rewards AS
SELECT id AS reward_id, name AS title, type AS kind, price_points AS cost_points,
       active AS enabled, stock > 0 AS in_stock, claimable AS actionable
FROM brand_shop.rewards;

CREATE VIEW attentive_source.tiers AS
SELECT id AS tier_id, name, rank AS position, min_points AS lower_bound,
       max_points AS upper_bound
FROM brand_shop.tiers;

CREATE VIEW attentive_source.program_settings AS
SELECT 1 AS id, expiry_on AS points_expiry_enabled, expiry_days AS expiry_period_days,
       notice_days AS expiry_notice_days, reminder_since AS reward_reminder_enabled_at
FROM brand_shop.program;

-- A role that can read the views and nothing else: a view reads its tables with its owner's
-- rights, so the reader needs no grant on brand_shop.
CREATE ROLE attentive_reader LOGIN PASSWORD 'change-me';
GRANT USAGE ON SCHEMA attentive_source TO attentive_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA attentive_source TO attentive_reader;
