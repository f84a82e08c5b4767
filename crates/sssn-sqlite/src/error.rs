//! Turns SQLite failures into [`sssn::Error`]s that name the file and the cause.
//!
//! Every error a user can cause (a wrong file, a missing or read-only directory, a full
//! disk) gets a sentence saying what to check. A file that is not an sssn database is an
//! [`ErrorKind::InvalidArgument`] (the caller pointed at the wrong file); everything else
//! is an [`ErrorKind::Store`].

use std::path::Path;

use rusqlite::ErrorCode;
use sssn::{Error, ErrorKind};

/// Maps a SQLite failure during `action` on the database at `path`.
pub(crate) fn db_error(path: &Path, action: &str, err: rusqlite::Error) -> Error {
    let (kind, cause) = describe(&err);
    Error::new(
        kind,
        format!("{action} on SQLite store {}: {cause}", path.display()),
    )
    .with_source(err)
}

/// The kind and a plain-words cause of a SQLite failure.
pub(crate) fn describe(err: &rusqlite::Error) -> (ErrorKind, String) {
    let rusqlite::Error::SqliteFailure(e, msg) = err else {
        return (ErrorKind::Store, err.to_string());
    };
    let detail = msg.as_deref().unwrap_or("");
    let cause = match e.code {
        ErrorCode::DiskFull => "the disk is full or the database reached its size limit \
             (SQLITE_FULL); the operation was not committed, and data committed before is intact"
            .to_owned(),
        ErrorCode::NotADatabase => {
            return (
                ErrorKind::InvalidArgument,
                "the file is not an sssn database: it is not a SQLite database at all \
                 (SQLITE_NOTADB)"
                    .to_owned(),
            );
        }
        ErrorCode::CannotOpen => format!(
            "cannot open the file (SQLITE_CANTOPEN): its directory may be missing or not \
             writable, or the path is a directory{}",
            suffix(detail)
        ),
        ErrorCode::ReadOnly => format!(
            "the database is read-only (SQLITE_READONLY): check the permissions of the file, \
             of its directory and of the file system{}",
            suffix(detail)
        ),
        ErrorCode::PermissionDenied => format!("permission denied{}", suffix(detail)),
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => format!(
            "the database is locked by another connection (SQLITE_BUSY){}",
            suffix(detail)
        ),
        ErrorCode::DatabaseCorrupt => format!(
            "the database file is corrupt (SQLITE_CORRUPT){}",
            suffix(detail)
        ),
        ErrorCode::SystemIoFailure => format!(
            "I/O error (extended code {}){}",
            e.extended_code,
            suffix(detail)
        ),
        _ => err.to_string(),
    };
    (ErrorKind::Store, cause)
}

fn suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// The error callers get when the writer thread is gone.
pub(crate) fn writer_stopped(path: &Path) -> Error {
    Error::new(
        ErrorKind::Store,
        format!(
            "the writer thread of SQLite store {} has stopped",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn full_disk_names_the_file_and_the_cause() {
        let err = db_error(
            Path::new("/data/q.db"),
            "append",
            failure(rusqlite::ffi::SQLITE_FULL),
        );
        assert_eq!(err.kind(), ErrorKind::Store);
        let text = err.to_string();
        assert!(text.contains("/data/q.db"), "{text}");
        assert!(text.contains("disk is full"), "{text}");
        assert!(text.contains("SQLITE_FULL"), "{text}");
    }

    #[test]
    fn not_a_database_is_an_invalid_argument() {
        let err = db_error(
            Path::new("notes.txt"),
            "open",
            failure(rusqlite::ffi::SQLITE_NOTADB),
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("notes.txt"));
        assert!(err.to_string().contains("not an sssn database"));
    }

    #[test]
    fn every_other_code_is_a_store_error_with_the_path() {
        for code in [
            rusqlite::ffi::SQLITE_CANTOPEN,
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_CORRUPT,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_PERM,
            rusqlite::ffi::SQLITE_ERROR,
        ] {
            let err = db_error(Path::new("/x/y.db"), "claim", failure(code));
            assert_eq!(err.kind(), ErrorKind::Store, "{code}");
            assert!(err.to_string().contains("claim on SQLite store /x/y.db"));
        }
    }
}
