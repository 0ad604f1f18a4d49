//! The argument grammars: how a program's arguments are parsed against its rules. `getopt` is
//! GNU `getopt_long`, `find` is find's expression, `permissive` checks only denied and
//! path-valued flags (build tools), and a literal program takes every argument as text.

mod find;
mod getopt;
mod permissive;

use crate::error::Result;

use super::program::{CheckedArgs, Program};
use super::schema::Grammar;

impl Program {
    /// Checks `args` and returns what to run.
    pub fn check(&self, args: &[String]) -> Result<CheckedArgs> {
        for a in args {
            if a.contains('\0') {
                return Err(self.refuse("an argument contains a NUL byte, which no program can receive".into()));
            }
        }
        if !self.require_prefix.is_empty() && !args.starts_with(&self.require_prefix) {
            return Err(self.refuse(format!(
                "{} may only be run as '{} {} ...'",
                self.name,
                self.name,
                self.require_prefix.join(" ")
            )));
        }
        let rest = &args[self.require_prefix.len().min(args.len())..];
        let mut checked = match self.grammar {
            Grammar::Gnu => self.check_gnu(rest)?,
            Grammar::Permissive => self.check_permissive(rest)?,
            Grammar::Find => self.check_find(rest)?,
            Grammar::Literal => CheckedArgs { argv: rest.to_vec(), paths: Vec::new() },
        };
        let mut argv = self.require_prefix.clone();
        argv.extend(self.prepend.iter().cloned());
        argv.append(&mut checked.argv);
        checked.argv = argv;
        Ok(checked)
    }
}
