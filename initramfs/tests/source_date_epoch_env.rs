//! `Options::from_env` reads SOURCE_DATE_EPOCH. This is its own test binary
//! with a single test, because it changes the process environment.

use initramfs::{Options, DEFAULT_COMPRESSION};

#[test]
fn from_env_respects_source_date_epoch() {
    std::env::remove_var("SOURCE_DATE_EPOCH");
    assert_eq!(
        Options::from_env().unwrap(),
        Options {
            mtime: 0,
            compression: DEFAULT_COMPRESSION
        }
    );

    std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
    assert_eq!(Options::from_env().unwrap().mtime, 1_700_000_000);

    std::env::set_var("SOURCE_DATE_EPOCH", "yesterday");
    let err = format!("{:#}", Options::from_env().unwrap_err());
    assert!(err.contains("SOURCE_DATE_EPOCH=\"yesterday\""), "{err}");

    std::env::remove_var("SOURCE_DATE_EPOCH");
}
