//! Discovery: protected-resource metadata (RFC 9728) and authorization-server metadata (RFC 8414).

use super::*;

/// The metadata of `{issuer}/mcp`, at `/.well-known/oauth-protected-resource/mcp`.
pub(super) async fn protected_resource(State(o): State<OAuth>) -> Response {
    metadata(&o, Endpoint::Mcp)
}

/// The metadata of the root endpoint `{issuer}/`, at `/.well-known/oauth-protected-resource`.
/// RFC 9728 §3.3: `resource` is the identifier the document's URL was made from, so a client
/// given the root URL finds its own URL here (one given `/mcp` and falling back to this
/// document finds a prefix of it, which MCP clients accept).
pub(super) async fn root_protected_resource(State(o): State<OAuth>) -> Response {
    metadata(&o, Endpoint::Root)
}

/// The metadata of a profile's endpoint `{issuer}/mcp/{profile}`, at
/// `/.well-known/oauth-protected-resource/mcp/{profile}` (404 for a profile the hub lacks): a
/// connector given the profile's URL asks for that resource, and its grant is bound to it.
pub(super) async fn profile_protected_resource(
    State(o): State<OAuth>,
    axum::extract::Path(profile): axum::extract::Path<String>,
) -> Response {
    match o.endpoint_of(&format!("/mcp/{profile}")) {
        e @ Endpoint::Profile(_) => metadata(&o, e),
        _ => (StatusCode::NOT_FOUND, "no such profile\n").into_response(),
    }
}

fn metadata(o: &OAuth, endpoint: Endpoint) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "resource": o.resource_at(endpoint),
            "authorization_servers": [o.issuer()],
            "scopes_supported": o.scopes_supported(),
            "bearer_methods_supported": ["header"],
            "resource_name": "Bastion",
        }),
    )
}

pub(super) async fn server_metadata(State(o): State<OAuth>) -> Response {
    let i = o.issuer();
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "registration_endpoint": format!("{i}/register"),
            "revocation_endpoint": format!("{i}/revoke"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            // `none` for the public clients of the authorization code flow; the secret methods for
            // machine clients (client credentials).
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": o.scopes_supported(),
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}
