//! `find`: leading options (`-P`, `-H`, `-L`), start points, then an expression of `-primary`
//! words whose values are taken by the primary's kind.

use crate::error::{Result, truncate_for_message};

use crate::commands::program::{CheckedArgs, Program, Value};

impl Program {
    pub(super) fn check_find(&self, args: &[String]) -> Result<CheckedArgs> {
        let mut paths = Vec::new();
        let mut i = 0;
        // Leading options (-P, -D ..., -O...).
        while i < args.len() && matches!(args[i].as_str(), "-P" | "-H" | "-L") {
            if let Some(reason) = self.denied_reason(&args[i]) {
                return Err(self.refuse(format!("{} is not allowed: it {reason}", args[i])));
            }
            i += 1;
        }
        let is_expr = |a: &str| (a.starts_with('-') && a.len() > 1) || matches!(a, "(" | ")" | "!" | ",");
        while i < args.len() && !is_expr(&args[i]) {
            paths.push(args[i].clone());
            i += 1;
        }
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if matches!(a.as_str(), "(" | ")" | "!" | ",") {
                continue;
            }
            if let Some(reason) = self.denied_reason(a) {
                return Err(self.refuse(format!("{a} is not allowed: it {reason}")));
            }
            let Some(kind) = self.long.get(a.as_str()) else {
                return Err(self.refuse(format!(
                    "'{}' is not an allowed find primary here (start points come first, then the expression)",
                    truncate_for_message(a)
                )));
            };
            match kind {
                Value::None => {}
                Value::Text | Value::Optional => {
                    self.take_value(args, &mut i, a)?;
                }
                Value::Path => {
                    let v = self.take_value(args, &mut i, a)?;
                    paths.push(v);
                }
                Value::Two => {
                    self.take_value(args, &mut i, a)?;
                    self.take_value(args, &mut i, a)?;
                }
            }
        }
        Ok(CheckedArgs { argv: args.to_vec(), paths })
    }
}
