-- The versioned catalogue of the application service: each import is one immutable version.
CREATE SCHEMA IF NOT EXISTS application;

CREATE TABLE application.catalogue_versions (
    version                 text PRIMARY KEY CHECK (version ~ '^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$'),
    imported_by             text NOT NULL,
    imported_at             timestamptz NOT NULL DEFAULT now(),
    checksums               jsonb NOT NULL DEFAULT '{}'::jsonb,  -- file name -> sha256 hex
    degree_min_score        double precision NOT NULL,
    degree_max_share        double precision NOT NULL,
    degree_hours_per_credit integer NOT NULL,
    major_count             integer NOT NULL,
    course_count            integer NOT NULL,
    point_count             integer NOT NULL,
    route_count             integer NOT NULL
);

CREATE TABLE application.catalogue_majors (
    version   text NOT NULL REFERENCES application.catalogue_versions (version),
    code      text NOT NULL,
    plan      text NOT NULL CHECK (plan IN ('old', 'new')),
    position  integer NOT NULL,
    name      text NOT NULL,
    level     text NOT NULL CHECK (level IN ('junior_college', 'bachelor')),
    suspended boolean NOT NULL,
    family    text,
    PRIMARY KEY (version, code, plan)
);

CREATE TABLE application.catalogue_courses (
    version     text NOT NULL,
    major_code  text NOT NULL,
    plan        text NOT NULL,
    position    integer NOT NULL,
    course_code text NOT NULL,
    name        text NOT NULL,
    credits     double precision,
    kind        text NOT NULL,
    assessment  text NOT NULL,
    practical   boolean NOT NULL,
    thesis      boolean NOT NULL,
    PRIMARY KEY (version, major_code, plan, course_code),
    FOREIGN KEY (version, major_code, plan)
        REFERENCES application.catalogue_majors (version, code, plan)
);

CREATE TABLE application.catalogue_points (
    version  text NOT NULL REFERENCES application.catalogue_versions (version),
    point_id text NOT NULL,
    name     text NOT NULL,
    PRIMARY KEY (version, point_id)
);

CREATE TABLE application.catalogue_routes (
    version           text NOT NULL REFERENCES application.catalogue_versions (version),
    route_id          text NOT NULL,
    kind              text NOT NULL,
    name              text NOT NULL,
    exam              text,
    min_level         integer,
    min_score         integer,
    subject           text,
    excluded_families text[] NOT NULL,
    note              text,
    PRIMARY KEY (version, route_id)
);

CREATE TABLE application.catalogue_route_courses (
    version     text NOT NULL,
    route_id    text NOT NULL,
    position    integer NOT NULL,
    course_code text NOT NULL,
    levels      text[] NOT NULL,  -- empty: both levels
    PRIMARY KEY (version, route_id, course_code),
    FOREIGN KEY (version, route_id) REFERENCES application.catalogue_routes (version, route_id)
);

-- Which version is active: the latest activation (append-only history).
CREATE TABLE application.catalogue_activations (
    activation_id bigserial PRIMARY KEY,
    version       text NOT NULL REFERENCES application.catalogue_versions (version),
    activated_by  text NOT NULL,
    activated_at  timestamptz NOT NULL DEFAULT now()
);

-- Versions are immutable: an application records the version it was checked against.
CREATE FUNCTION application.catalogue_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'catalogue rows are immutable (%.%)', TG_TABLE_SCHEMA, TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER catalogue_versions_immutable BEFORE UPDATE OR DELETE ON application.catalogue_versions
    FOR EACH ROW EXECUTE FUNCTION application.catalogue_immutable();
CREATE TRIGGER catalogue_majors_immutable BEFORE UPDATE OR DELETE ON application.catalogue_majors
    FOR EACH ROW EXECUTE FUNCTION application.catalogue_immutable();
CREATE TRIGGER catalogue_courses_immutable BEFORE UPDATE OR DELETE ON application.catalogue_courses
    FOR EACH ROW EXECUTE FUNCTION application.catalogue_immutable();
CREATE TRIGGER catalogue_points_immutable BEFORE UPDATE OR DELETE ON application.catalogue_points
    FOR EACH ROW EXECUTE FUNCTION application.catalogue_immutable();
CREATE TRIGGER catalogue_routes_immutable BEFORE UPDATE OR DELETE ON application.catalogue_routes
    FOR EACH ROW EXECUTE FUNCTION application.catalogue_immutable();
CREATE TRIGGER catalogue_route_courses_immutable
    BEFORE UPDATE OR DELETE ON application.catalogue_route_courses
    FOR EACH ROW EXECUTE FUNCTION application.catalogue_immutable();
CREATE TRIGGER catalogue_activations_immutable
    BEFORE UPDATE OR DELETE ON application.catalogue_activations
    FOR EACH ROW EXECUTE FUNCTION application.catalogue_immutable();
