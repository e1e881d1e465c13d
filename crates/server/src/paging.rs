//! Paged listings: `limit` (bounded) and `cursor` (the last id of the previous page).

use crate::error::ApiError;

/// The largest page any listing returns.
pub const MAX_LIMIT: usize = 500;

/// The page size asked for, `default` when not given; 400 outside 1 to [`MAX_LIMIT`].
pub fn limit(given: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match given {
        None => Ok(default),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}, got {n}"
        ))),
    }
}

/// A page cursor: the last id of the previous page.
pub fn cursor<T: std::str::FromStr>(text: Option<&str>) -> Result<Option<T>, ApiError> {
    text.map(|c| {
        c.parse()
            .map_err(|_| ApiError::bad_request("Invalid cursor"))
    })
    .transpose()
}

/// The cursor of the page after one of `len` rows ending at `last`: none when the page was
/// not full (there is nothing after it).
pub fn next<T>(len: usize, limit: usize, last: Option<T>) -> Option<T> {
    if len == limit { last } else { None }
}
