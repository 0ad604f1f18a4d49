//! Build tools (cargo, npm, make, go, pytest): they run project code by design and are contained
//! by the sandbox, so only the subcommand, the denied flags and the path-valued flags are checked.

use crate::error::{Result, truncate_for_message};

use crate::commands::program::{CheckedArgs, Program, Value};

impl Program {
    /// Build tools: the subcommand must be allowed, denied flags (and abbreviations of denied
    /// long flags, and denied letters anywhere in a short bundle) are refused, path-valued flags
    /// are confined; everything else is the sandbox's business.
    pub(super) fn check_permissive(&self, args: &[String]) -> Result<CheckedArgs> {
        if !self.subcommands.is_empty() {
            let first = args.iter().find(|a| !a.starts_with('-') || self.subcommands.contains(a));
            match first {
                Some(sub) if self.subcommands.contains(sub) => {}
                Some(sub) => {
                    return Err(self.refuse(format!(
                        "'{}' is not an allowed subcommand of {}; allowed: {}",
                        truncate_for_message(sub),
                        self.name,
                        self.subcommands.join(", ")
                    )));
                }
                None => {
                    return Err(self.refuse(format!(
                        "{} needs a subcommand; allowed: {}",
                        self.name,
                        self.subcommands.join(", ")
                    )));
                }
            }
        }
        let mut paths = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if a == "--" {
                break;
            }
            if !a.starts_with('-') || a == "-" {
                continue;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (a.as_str(), None),
            };
            if let Some(reason) = self.denied_reason(name) {
                return Err(self.refuse(format!("{name} is not allowed: it {reason}")));
            }
            if name.starts_with("--") {
                if name.len() > 3
                    && let Some((full, reason)) =
                        self.denied.iter().find(|(d, _)| d.starts_with("--") && d.starts_with(name))
                {
                    return Err(self.refuse(format!("{name} abbreviates {full}, which is not allowed: it {reason}")));
                }
            } else {
                // Go's single-dash long flags (`-toolexec`).
                if let Some((flag, reason)) = self.denied.iter().find(|(d, _)| {
                    !d.starts_with("--") && d.len() > 2 && (name == d.as_str() || name.starts_with(&format!("{d}=")))
                }) {
                    return Err(self.refuse(format!("{flag} is not allowed: it {reason}")));
                }
                self.check_short_bundle(a, args, &mut i, &mut paths)?;
                continue;
            }
            if self.long.get(name) == Some(&Value::Path) {
                let v = match inline {
                    Some(v) => v.to_string(),
                    None => self.take_value(args, &mut i, name)?,
                };
                paths.push(v);
            }
        }
        Ok(CheckedArgs { argv: args.to_vec(), paths })
    }

    /// A bundle of short letters (`-sC/srv/Example`), read as `getopt_long` reads it: each letter
    /// up to the first one known to take a value is checked against the denied flags, and the rest
    /// of the bundle is that value (`-C/srv/Example` is `-C` with `/srv/Example`, not `-E`), or
    /// else the next argument. A letter the profile does not describe is taken to need no value,
    /// so the letters after it are still checked: unknown is read the strict way.
    fn check_short_bundle(&self, bundle: &str, args: &[String], i: &mut usize, paths: &mut Vec<String>) -> Result<()> {
        let body = &bundle[1..];
        for (pos, c) in body.char_indices() {
            let flag = format!("-{c}");
            if let Some(reason) = self.denied_reason(&flag) {
                let shown = truncate_for_message(bundle);
                return Err(self.refuse(format!("{flag} (in {shown}) is not allowed: it {reason}")));
            }
            let rest = &body[pos + c.len_utf8()..];
            match self.short.get(&c) {
                None | Some(Value::None) => {}
                Some(Value::Optional) if rest.is_empty() => {}
                Some(kind) => {
                    let v = if rest.is_empty() { self.take_value(args, i, &flag)? } else { rest.to_string() };
                    if *kind == Value::Path {
                        paths.push(v);
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
