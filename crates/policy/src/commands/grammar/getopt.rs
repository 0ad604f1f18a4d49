//! GNU `getopt_long`: bundled short flags (`-abc`, `-n5`, `-n 5`), `--long=value` and
//! `--long value`, unambiguous abbreviations rewritten to the full flag, options after operands,
//! and `--`.

use crate::error::{Result, truncate_for_message};

use crate::commands::program::{CheckedArgs, Program, Value};
use crate::commands::schema::Operands;

impl Program {
    /// The full long flag `given` (without `=value`) stands for: exact, or the one allowed flag
    /// it abbreviates. Abbreviations of denied flags are refused.
    fn resolve_long(&self, given: &str) -> Result<(String, Value)> {
        let shown = truncate_for_message(given);
        if let Some(reason) = self.denied_reason(given) {
            return Err(self.refuse(format!("{shown} is not allowed: it {reason}")));
        }
        if let Some(v) = self.long.get(given) {
            return Ok((given.to_string(), *v));
        }
        if let Some((full, reason)) = self.denied.iter().find(|(d, _)| d.starts_with("--") && d.starts_with(given)) {
            return Err(self.refuse(format!("{shown} abbreviates {full}, which is not allowed: it {reason}")));
        }
        let candidates: Vec<(&String, &Value)> = self.long.iter().filter(|(l, _)| l.starts_with(given)).collect();
        match candidates.as_slice() {
            [(full, v)] => Ok(((*full).clone(), **v)),
            [] => Err(self.refuse(format!("{shown} is not an allowed flag of {}", self.name))),
            many => Err(self.refuse(format!(
                "{shown} is ambiguous ({}); write the flag in full",
                many.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    pub(super) fn check_gnu(&self, args: &[String]) -> Result<CheckedArgs> {
        let mut argv = Vec::with_capacity(args.len() + 1);
        let mut paths = Vec::new();
        let mut operands: Vec<String> = Vec::new();
        let mut pattern_given = false;
        let mut i = 0;
        let mut end_of_options = false;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if end_of_options || a == "-" || !a.starts_with('-') {
                operands.push(a.clone());
                continue;
            }
            if a == "--" {
                end_of_options = true;
                continue;
            }
            if let Some(body) = a.strip_prefix("--") {
                let (name, inline) = match body.split_once('=') {
                    Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                    None => (a.clone(), None),
                };
                let (full, kind) = self.resolve_long(&name)?;
                pattern_given |= self.pattern_flags.contains(&full);
                match (kind, inline) {
                    (Value::None, Some(_)) => return Err(self.refuse(format!("{full} takes no value"))),
                    (Value::None, None) => argv.push(full),
                    (Value::Optional, v) => argv.push(match v {
                        Some(v) => {
                            self.check_value(&full, &v)?;
                            format!("{full}={v}")
                        }
                        None => full,
                    }),
                    (Value::Two, inline) => {
                        let first = match inline {
                            Some(v) => v,
                            None => self.take_value(args, &mut i, &full)?,
                        };
                        let second = self.take_value(args, &mut i, &full)?;
                        argv.extend([full, first, second]);
                    }
                    (kind, inline) => {
                        let v = match inline {
                            Some(v) => v,
                            None => self.take_value(args, &mut i, &full)?,
                        };
                        if kind == Value::Path {
                            paths.push(v.clone());
                        }
                        self.check_value(&full, &v)?;
                        argv.push(format!("{full}={v}"));
                    }
                }
                continue;
            }
            // A bundle of short flags: `-abc`, `-n5`, `-n 5`.
            let body = &a[1..];
            if self.numeric_short && body.bytes().all(|b| b.is_ascii_digit()) {
                argv.push(a.clone());
                continue;
            }
            argv.push(a.clone());
            for (pos, c) in body.char_indices() {
                let flag = format!("-{c}");
                if let Some(reason) = self.denied_reason(&flag) {
                    return Err(self.refuse(format!("{flag} is not allowed: it {reason}")));
                }
                let Some(kind) = self.short.get(&c) else {
                    return Err(self.refuse(format!(
                        "-{} is not an allowed flag of {}",
                        truncate_for_message(&c.to_string()),
                        self.name
                    )));
                };
                pattern_given |= self.pattern_flags.contains(&flag);
                match kind {
                    Value::None => {}
                    // getopt_long's `x::`: the rest of the bundle, if any, is the value (`-Iseconds`).
                    Value::Optional => {
                        if pos + c.len_utf8() < body.len() {
                            break;
                        }
                    }
                    Value::Two => {
                        return Err(self.refuse(format!("{flag} takes two values; give it on its own")));
                    }
                    Value::Text | Value::Path => {
                        let attached = &body[pos + c.len_utf8()..];
                        let v = if attached.is_empty() {
                            let v = self.take_value(args, &mut i, &flag)?;
                            argv.push(v.clone());
                            v
                        } else {
                            attached.to_string()
                        };
                        self.check_value(&flag, &v)?;
                        if *kind == Value::Path {
                            paths.push(v);
                        }
                        break;
                    }
                }
            }
        }
        self.check_words(&operands)?;
        self.classify_operands(&operands, pattern_given, &mut paths)?;
        if self.subcommand_first && !operands.is_empty() {
            argv.insert(0, operands.remove(0));
        }
        if !operands.is_empty() {
            if self.double_dash {
                // Operands go after `--`, so one that starts with '-' stays an operand.
                argv.push("--".to_string());
            } else if let Some(dashed) = operands.iter().find(|o| o.starts_with('-') && o.as_str() != "-") {
                return Err(self.refuse(format!(
                    "{} cannot take an operand starting with '-' ('{}'): it does not accept '--'",
                    self.name,
                    truncate_for_message(dashed)
                )));
            }
            argv.extend(operands);
        }
        Ok(CheckedArgs { argv, paths })
    }

    fn classify_operands(&self, operands: &[String], pattern_given: bool, paths: &mut Vec<String>) -> Result<()> {
        if let Some(max) = self.max_operands
            && operands.len() > max
        {
            return Err(self.refuse(format!("{} takes at most {max} operand(s), got {}", self.name, operands.len())));
        }
        match self.operands {
            Operands::Paths => paths.extend(operands.iter().cloned()),
            Operands::Text => {}
            Operands::PatternThenPaths => {
                let skip = usize::from(!pattern_given);
                paths.extend(operands.iter().skip(skip).cloned());
            }
            Operands::None if !operands.is_empty() => {
                return Err(self.refuse(format!("{} takes no operands", self.name)));
            }
            Operands::None => {}
        }
        Ok(())
    }
}
