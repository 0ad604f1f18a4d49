//! How tool results and tool errors look on the wire.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bastion_policy::Error;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, JsonObject};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

/// A structured tool result: the value as structured content and the same JSON, compact, as the
/// text content (for clients that read only text). Like rmcp's `Json`, whose place it takes in a
/// tool's return type (the `#[tool]` macro derives the output schema from any `Json<T>`), but the
/// text is serialised from `T` itself rather than from the `serde_json::Value` built for the
/// structured content: walking that tree of maps again cost about as much as building it (a
/// 2 000-commit log: ~1 ms of the server's ~10 ms). Keys in the text therefore follow the field
/// order of `T`; the structured content is unchanged.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Serialize + JsonSchema + 'static> IntoCallToolResult for Json<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        let failed = |e: serde_json::Error| {
            rmcp::ErrorData::internal_error(format!("Failed to serialize structured content: {e}"), None)
        };
        let text = serde_json::to_string(&self.0).map_err(failed)?;
        let value = serde_json::to_value(&self.0).map_err(failed)?;
        let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
        r.structured_content = Some(value);
        Ok(r.into())
    }
}

/// The output schema of a tool returning `Result<Json<T>, Failure>`, for its attribute:
/// `#[tool(name = "…", output_schema = bastion_server_kit::output_schema_of(Self::the_tool))]`.
/// It is rmcp's (what `#[tool]` derives from the return type) when `tools/list` serves output
/// schemas ([`set_output_schemas`](crate::compact::set_output_schemas), set from the flags before
/// the server is built), else an empty object, which [`ToolTable`](crate::ToolTable) never
/// serves: generating schemas that are not served was a third of a server's work from exec to
/// its `tools/list` answer.
pub fn output_schema_of<S, P, R: ToolOutput>(
    _tool: impl for<'a> Fn(&'a S, P) -> Pin<Box<dyn Future<Output = R> + Send + 'a>>,
) -> Arc<JsonObject> {
    static UNSERVED: OnceLock<Arc<JsonObject>> = OnceLock::new();
    match crate::compact::output_schemas() {
        true => R::output_schema(),
        false => UNSERVED.get_or_init(Arc::default).clone(),
    }
}

/// A tool's return type that has an output schema ([`output_schema_of`]).
pub trait ToolOutput {
    /// rmcp's output schema of the structured result.
    fn output_schema() -> Arc<JsonObject>;
}

impl<T: Serialize + JsonSchema + 'static> ToolOutput for Result<Json<T>, Failure> {
    fn output_schema() -> Arc<JsonObject> {
        rmcp::handler::server::common::schema_for_output::<T>()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, JsonSchema)]
    struct Out {
        zeta: u32,
        alpha: Vec<&'static str>,
    }

    #[test]
    fn the_text_is_the_structured_content_serialised_in_field_order() {
        let Ok(CallToolResponse::Complete(r)) = Json(Out { zeta: 1, alpha: vec!["a\"b"] }).into_call_tool_result()
        else {
            panic!("a structured result")
        };
        assert_eq!(r.is_error, Some(false));
        let text = r.content[0].as_text().map(|t| t.text.clone()).unwrap();
        assert_eq!(text, r#"{"zeta":1,"alpha":["a\"b"]}"#);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).ok(), r.structured_content);
    }

    #[test]
    fn a_failure_carries_its_code_in_text_and_structure() {
        let e = Error::new(bastion_policy::ErrorCode::NotFound, "no such file");
        let r = error_result(&e);
        assert_eq!(r.is_error, Some(true));
        assert_eq!(r.content[0].as_text().map(|t| t.text.as_str()), Some("not_found: no such file"));
        assert_eq!(r.structured_content, Some(json!({"code": "not_found", "message": "no such file"})));
    }
}
