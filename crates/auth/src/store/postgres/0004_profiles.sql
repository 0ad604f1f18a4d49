-- Static tokens bound to hub profiles (`bastion token create --profile NAME`): a token with
-- rows here reaches only those profiles' surfaces (`/mcp/NAME`); one without reaches every
-- surface, as before. OAuth grants need no column: a grant's `resource` names its profile.
CREATE TABLE token_profiles(
    token_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    PRIMARY KEY (token_id, profile)
);
