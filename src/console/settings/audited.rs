//! What the admin pages that save live settings share: the answer when someone else saved
//! the same setting first.

use crate::console::ConsoleError;
use crate::live_settings::SaveError;

/// A stale save is a 409 page that sends the admin back to the page to review the values
/// now in force; nothing was changed.
pub fn save_error(e: SaveError, back: &str) -> ConsoleError {
    match e {
        SaveError::Stale => ConsoleError::Conflict {
            message: "Someone else saved these settings after you opened the page, so nothing was changed. Open the page again to see the values now in force, then make your change.".into(),
            back: back.to_owned(),
        },
        SaveError::Db(e) => e.into(),
    }
}
