//! Delivery expectations from the shop's own recent deliveries.

use crate::services::Services;

/// How many recent deliveries the estimate looks at.
const SAMPLE: i64 = 100;

/// Median minutes from payment to delivery over the last deliveries, or the configured default
/// while there is no history. Rounded up to a whole minute.
pub async fn typical_minutes(services: &Services) -> Result<u32, sqlx::Error> {
    let mut took = crate::db::orders::recent_delivery_times(services.db.pool(), SAMPLE).await?;
    if took.is_empty() {
        return Ok(services.settings.shop.default_delivery_minutes.max(1));
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
