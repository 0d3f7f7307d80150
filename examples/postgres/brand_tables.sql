-- A brand's own loyalty tables, in a shape of its own (schema brand_shop). Only here so the
-- views in views.sql can be tried out; a real brand already has its tables.
CREATE SCHEMA brand_shop;

CREATE TABLE brand_shop.members (
    member_id       bigint PRIMARY KEY,
    mobile          text,
    email_address   text,
    shopify_customer_id bigint,
    first_name      text,
    last_name       text,
    city            text,
    region          text,
    postcode        text,
    country_code    text,
    birthday        date,
    joined_at       timestamptz NOT NULL,
    last_activity   timestamptz,
    tier_id         int,
    segment         text,
    categories      text[]
);
CREATE TABLE brand_shop.lists (
    list_key    text PRIMARY KEY,
    title       text NOT NULL,
    created     timestamptz NOT NULL
);
CREATE TABLE brand_shop.list_members (
    list_key    text REFERENCES brand_shop.lists,
    member_id   bigint REFERENCES brand_shop.members,
    added       timestamptz NOT NULL,
    PRIMARY KEY (list_key, member_id)
);
CREATE TABLE brand_shop.points (
    txn_id      bigint PRIMARY KEY,
    member_id   bigint NOT NULL REFERENCES brand_shop.members,
    delta       int NOT NULL,
    reason      text NOT NULL,      -- earn | redeem | expire
    state       text NOT NULL,      -- approved | pending | cancelled
    created     timestamptz NOT NULL,
    approved    timestamptz
);
CREATE TABLE brand_shop.rewards (
    id          int PRIMARY KEY,
    name        text NOT NULL,
    type        text NOT NULL,
    price_points int NOT NULL,
    active      boolean NOT NULL,
    stock       int NOT NULL,
    claimable   boolean NOT NULL
);
CREATE TABLE brand_shop.tiers (
    id          int PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    rank        int NOT NULL,
    min_points  int NOT NULL,
    max_points  int
);
CREATE TABLE brand_shop.program (
    expiry_on       boolean NOT NULL,
    expiry_days     int NOT NULL,
    notice_days     int NOT NULL,
    reminder_since  timestamptz
);

INSERT INTO brand_shop.tiers VALUES (1, 'Bronze', 1, 0, 499), (2, 'Gold', 2, 500, NULL);
INSERT INTO brand_shop.members VALUES
    (101, '(415) 555-2671', 'Ada@Example.com', 9001, 'Ada', 'Lovelace', 'San Francisco', 'CA',
     '94103', 'US', '1990-12-10', '2026-01-05 10:00+00', '2026-10-20 09:00+00', 2, 'Loyal',
     ARRAY['shoes', 'hats']),
    (102, NULL, 'grace@example.com', NULL, 'Grace', 'Hopper', 'London', '  ', NULL, 'GB', NULL,
     '2026-02-01 00:00+00', NULL, 1, NULL, NULL);
INSERT INTO brand_shop.lists VALUES ('vip', 'VIP', '2026-01-01+00'),
    ('churn_risk', 'Churn risk', '2026-01-01+00'), ('newsletter', 'Newsletter', '2026-01-01+00');
INSERT INTO brand_shop.list_members VALUES ('vip', 101, '2026-02-01+00'),
    ('newsletter', 102, '2026-02-02+00');
INSERT INTO brand_shop.points VALUES
    (1, 101, 700, 'earn', 'approved', '2026-10-02 10:00+00', '2026-10-02 10:00+00'),
    (2, 101, -100, 'redeem', 'approved', '2026-10-05 10:00+00', '2026-10-05 10:00+00'),
    (3, 102, 300, 'earn', 'cancelled', '2026-10-06 10:00+00', NULL);
INSERT INTO brand_shop.rewards VALUES (1, '$5 off', 'discount_voucher', 100, true, 10, true);
INSERT INTO brand_shop.program VALUES (true, 365, 30, '2026-01-01+00');
