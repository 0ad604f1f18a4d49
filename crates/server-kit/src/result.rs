//! How tool results and tool errors look on the wire.

use bastion_policy::Error;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde_json::json;

/// A tool failure: becomes an `isError: true` result whose text starts with the stable code and
/// whose structured content is `{"code", "message"}`.
#[derive(Debug)]
pub struct Failure(pub Error);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(e)
    }
}

impl IntoCallToolResult for Failure {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(error_result(&self.0).into())
    }
}

/// The `isError` result for `e`.
pub fn error_result(e: &Error) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(format!("{}: {}", e.code, e.message))]);
    r.structured_content = Some(json!({"code": e.code, "message": e.message}));
    r
}
