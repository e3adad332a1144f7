//! Delivery expectations from the shop's own recent deliveries.

use crate::db::col;
use crate::state::AppState;

/// How many recent deliveries the estimate looks at.
const SAMPLE: i64 = 100;

/// Median minutes from payment to delivery over the last deliveries, or the configured default
/// while there is no history. Rounded up to a whole minute.
pub async fn typical_minutes(state: &AppState) -> Result<u32, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT delivered_at - paid_at AS took FROM orders
         WHERE delivered_at IS NOT NULL AND paid_at IS NOT NULL ORDER BY delivered_at DESC LIMIT $1",
    )
    .bind(SAMPLE)
    .fetch_all(state.db.pool())
    .await?;
    let mut took: Vec<i64> = rows
        .iter()
        .filter_map(|r| col::<i64>(r, "took").ok())
        .collect();
    if took.is_empty() {
        return Ok(state.settings.shop.default_delivery_minutes.max(1));
    }
    took.sort_unstable();
    let median_ms = took[took.len() / 2].max(0);
    Ok(((median_ms + 59_999) / 60_000).max(1) as u32)
}

pub fn describe_minutes(minutes: u32) -> String {
    match minutes {
        0 | 1 => "within a minute".into(),
        m if m < 90 => format!("within about {m} minutes"),
        m => format!("within about {} hours", m.div_ceil(60)),
    }
}

/// When an order paid at `paid_at` counts as late: well past the usual time.
pub fn late_after(paid_at: i64, typical_minutes: u32) -> i64 {
    let typical_ms = typical_minutes as i64 * 60_000;
    paid_at + (typical_ms * 3).max(typical_ms + 15 * 60_000)
}
