//! The shape every kind's `read` shares: a describe by the recorded id that found nothing
//! (NotFound is mapped to `None` by `ec2::not_found_is_none`), or found the resource only in
//! a state it never leaves towards usable (deleting, deleted, failed, released), is
//! `Observed::Missing`; otherwise the live settings the kind reads.

use crate::core::diff::Settings;
use crate::core::resource::Observed;

/// `Some(x)` is present with `live(x)`, `None` is missing.
pub fn observed<T>(found: Option<T>, live: impl FnOnce(T) -> Settings) -> Observed {
    match found {
        Some(x) => Observed::Present(live(x)),
        None => Observed::Missing,
    }
}

/// For kinds that read existence only: present with no settings (nothing claimed about them).
pub fn exists<T>(found: Option<T>) -> Observed {
    observed(found, |_| Settings::new())
}

/// As `observed`, with a resource in a terminal state (`gone(&x)`) counted as missing.
pub fn observed_unless<T>(
    found: Option<T>,
    gone: impl FnOnce(&T) -> bool,
    live: impl FnOnce(T) -> Settings,
) -> Observed {
    observed(found.filter(|x| !gone(x)), live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diff::settings;

    #[test]
    fn absent_or_terminal_is_missing_else_the_live_settings() {
        assert_eq!(exists(None::<u8>), Observed::Missing);
        assert_eq!(exists(Some(1)), Observed::Present(Settings::new()));
        let live = |s: &str| settings([("state", s.to_string())]);
        assert_eq!(
            observed_unless(Some("available"), |s| *s == "deleted", live),
            Observed::Present(settings([("state", "available".to_string())]))
        );
        assert_eq!(
            observed_unless(Some("deleted"), |s| *s == "deleted", live),
            Observed::Missing
        );
        assert_eq!(
            observed_unless(None, |s: &&str| *s == "deleted", live),
            Observed::Missing
        );
    }
}
