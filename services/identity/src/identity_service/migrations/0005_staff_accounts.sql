-- Staff accounts (工作人员账号): reviewers bound to confirmation points, senior reviewers, ops.
-- Created by ops from the CLI; the identity.staff streams carry the same facts without secrets.
-- The unique username keeps concurrent creations of the same account from both succeeding.
CREATE TABLE identity.staff_accounts (
    staff_id            uuid PRIMARY KEY,
    username            text NOT NULL UNIQUE
                        CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    display_name        text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 50),
    roles               text[] NOT NULL
                        CHECK (cardinality(roles) >= 1
                               AND roles <@ ARRAY['reviewer', 'senior_reviewer', 'ops']::text[]),
    confirmation_points text[] NOT NULL DEFAULT '{}'
                        CHECK (array_to_string(confirmation_points, ',') ~ '^([0-9]{6}(,|$))*$'),
    password_hash       text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text NOT NULL,
    disabled_at         timestamptz,
    -- A reviewer (初审) is bound to at least one confirmation point; other roles to none.
    CHECK (('reviewer' = ANY (roles)) = (cardinality(confirmation_points) >= 1))
);
