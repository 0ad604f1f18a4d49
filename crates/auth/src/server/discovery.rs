//! Discovery: protected-resource metadata (RFC 9728) and authorization-server metadata (RFC 8414).

use super::*;

pub(super) async fn protected_resource(State(o): State<OAuth>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "resource": o.resource(),
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
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": o.scopes_supported(),
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}
