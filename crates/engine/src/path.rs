//! Validation of the relative paths that the API takes.
//!
//! A path on the API is relative to an export root and `/`-separated. Lexical checks happen
//! here; the kernel enforces confinement at resolution time (see [`crate::resolve`]).

use crate::error::{Error, ErrorKind};

/// The directory, directly under an export root, where the daemon keeps its access file; and
/// the prefix of the named temporaries that the fallback publish path creates. Both are
/// visible to clients through the mount, so the protocol crate defines them.
pub use openvaai_proto::layout::{PRIVATE_DIR, TEMP_PREFIX};

/// Longest path accepted (Linux's PATH_MAX including the NUL).
const PATH_MAX: usize = 4095;
/// Longest single component accepted (Linux's NAME_MAX).
const NAME_MAX: usize = 255;

/// A validated relative path: no empty, `.`-only or `..` components, not absolute, no NUL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RelPath<'a> {
    /// The normalised path (empty and `.` components dropped), at least one component.
    normal: String,
    /// The original text, for error messages.
    pub(crate) text: &'a str,
}

impl<'a> RelPath<'a> {
    /// Checks `text` and normalises it.
    pub(crate) fn parse(op: &'static str, text: &'a str) -> Result<Self, Error> {
        let invalid = |kind| Error::new(kind, op, text.to_owned());
        if text.is_empty() || text.starts_with('/') || text.contains('\0') {
            return Err(invalid(ErrorKind::InvalidArgument));
        }
        if text.len() > PATH_MAX {
            return Err(invalid(ErrorKind::NameInvalid));
        }
        let mut parts = Vec::new();
        for component in text.split('/') {
            match component {
                "" | "." => continue,
                ".." => return Err(invalid(ErrorKind::InvalidArgument)),
                c if c.len() > NAME_MAX => return Err(invalid(ErrorKind::NameInvalid)),
                c => parts.push(c),
            }
        }
        if parts.is_empty() {
            return Err(invalid(ErrorKind::InvalidArgument));
        }
        // The private directory of this export, or of one that might be served inside it:
        // no component may name it.
        if parts.contains(&PRIVATE_DIR) {
            return Err(invalid(ErrorKind::AccessDenied));
        }
        Ok(RelPath {
            normal: parts.join("/"),
            text,
        })
    }

    /// The whole normalised path.
    pub(crate) fn as_str(&self) -> &str {
        &self.normal
    }

    /// The directory part (`"."` for a file directly in the root) and the last component.
    pub(crate) fn split_parent(&self) -> (&str, &str) {
        match self.normal.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None => (".", &self.normal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(p: &str) -> Option<ErrorKind> {
        RelPath::parse("test", p).err().map(|e| e.kind())
    }

    #[test]
    fn accepts_plain_relative_paths_and_normalises() {
        let p = RelPath::parse("t", "a//b/./c.vmdk").unwrap();
        assert_eq!(p.as_str(), "a/b/c.vmdk");
        assert_eq!(p.split_parent(), ("a/b", "c.vmdk"));
        let p = RelPath::parse("t", "disk.vmdk").unwrap();
        assert_eq!(p.split_parent(), (".", "disk.vmdk"));
        let p = RelPath::parse("t", "dir/").unwrap();
        assert_eq!(p.split_parent(), (".", "dir"));
        // A name that merely starts with the private directory's name is fine.
        assert!(RelPath::parse("t", ".openvaai2/x").is_ok());
        assert!(RelPath::parse("t", "a/.openvaai.d/x").is_ok());
    }

    #[test]
    fn refuses_empty_absolute_nul_and_dotdot() {
        assert_eq!(kind(""), Some(ErrorKind::InvalidArgument));
        assert_eq!(kind("."), Some(ErrorKind::InvalidArgument));
        assert_eq!(kind("./"), Some(ErrorKind::InvalidArgument));
        assert_eq!(kind("/etc/passwd"), Some(ErrorKind::InvalidArgument));
        assert_eq!(kind("a\0b"), Some(ErrorKind::InvalidArgument));
        assert_eq!(kind(".."), Some(ErrorKind::InvalidArgument));
        assert_eq!(kind("a/../b"), Some(ErrorKind::InvalidArgument));
        assert_eq!(kind("a/.."), Some(ErrorKind::InvalidArgument));
    }

    #[test]
    fn refuses_overlong_names() {
        assert_eq!(kind(&"n".repeat(256)), Some(ErrorKind::NameInvalid));
        assert!(kind(&"n".repeat(255)).is_none());
        let long = vec!["d"; 2100].join("/");
        assert_eq!(kind(&long), Some(ErrorKind::NameInvalid));
    }

    #[test]
    fn refuses_the_private_directory() {
        assert_eq!(kind(".openvaai"), Some(ErrorKind::AccessDenied));
        assert_eq!(kind(".openvaai/access"), Some(ErrorKind::AccessDenied));
        assert_eq!(kind("./.openvaai/access"), Some(ErrorKind::AccessDenied));
        assert_eq!(kind(".//.openvaai/"), Some(ErrorKind::AccessDenied));
        // In any component: the private directory of an export inside this one.
        assert_eq!(kind("a/.openvaai/access"), Some(ErrorKind::AccessDenied));
        assert_eq!(kind("a/b/.openvaai"), Some(ErrorKind::AccessDenied));
    }
}
