//! Path operands: the check of every argument a program will open, beneath the roots.

use std::path::{Component, Path, PathBuf};

use crate::deny::{Access, DenyRules};
use crate::error::{Error, ErrorCode, Result, truncate_for_message};
use crate::path::RelPath;
use crate::roots::{Roots, Target};

/// Checks a path argument of a command run in `cwd`: it must lie beneath a root (following
/// in-root symlinks), must not be denied by the globs, and must not climb through a symlink with
/// `..` (the program resolves `..` physically). A missing path is fine: the program reports it.
pub fn check_path_argument(roots: &Roots, deny: &DenyRules, cwd: &Target, arg: &str, access: Access) -> Result<()> {
    if arg == "-" || arg.is_empty() {
        return Ok(());
    }
    let raw = Path::new(arg);
    let (target, mut prefix, remainder) = if raw.is_absolute() {
        let target = roots.target(arg, None)?;
        let remainder = raw.strip_prefix(target.root.real_path()).unwrap_or(raw).to_path_buf();
        (target, PathBuf::new(), remainder)
    } else {
        let joined = cwd.rel.as_path().join(raw);
        let target = Target { root: cwd.root.clone(), rel: RelPath::parse(&joined)? };
        (target, cwd.rel.as_path().to_path_buf(), raw.to_path_buf())
    };
    // The program resolves `a/../b` through `a`: a symlink there could lead anywhere.
    for component in remainder.components() {
        match component {
            Component::ParentDir => {
                let rel = RelPath::parse(&prefix)?;
                if !rel.is_root() && is_symlink(roots, &target, rel, deny) {
                    return Err(Error::new(
                        ErrorCode::PathOutsideRoot,
                        format!(
                            "'{}' uses '..' after a symbolic link, which the program would follow out of the root; name the target directly",
                            truncate_for_message(arg)
                        ),
                    ));
                }
                prefix.pop();
            }
            Component::Normal(n) => prefix.push(n),
            _ => {}
        }
    }
    deny.check_in(&target.root, &target.rel, access)?;
    match roots.stat(&target, deny) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::NotADirectory) => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_symlink(roots: &Roots, t: &Target, rel: RelPath, deny: &DenyRules) -> bool {
    let probe = Target { root: t.root.clone(), rel };
    match roots.stat(&probe, deny) {
        Ok((_, Some(link), _)) => (link.st_mode & 0o170000) == 0o120000,
        Ok(_) => false,
        // A component that escapes or cannot be resolved is treated as a link.
        Err(e) => !matches!(e.code, ErrorCode::NotFound),
    }
}
