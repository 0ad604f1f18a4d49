//! The resource-server side: checking an access token presented to `/mcp` (RS-05).

use super::*;

impl OAuth {
    /// Checks an access token presented to `/mcp` (RS-05).
    pub async fn verify(&self, token: &str) -> Result<Access, Refusal> {
        if !token.starts_with(crate::store::ACCESS_PREFIX) {
            return Err(Refusal::Unknown);
        }
        let (token, resource, t) = (token.to_owned(), self.inner.resource.clone(), self.now());
        self.db(move |s| s.verify_access(&token, &resource, t)).await.unwrap_or(Err(Refusal::Unavailable))
    }
}
