//! Analytics: rollups per film and per day, kept by the `analytics` consumer of the event
//! log (`rollups`), computed once from the stored records on the first start
//! (`backfill`), and read by range for reports and retention curves (`report`). Days are
//! in `analytics.timezone` (`calendar`).

pub mod backfill;
pub mod calendar;
pub mod report;
pub mod rollups;

pub use backfill::backfill_once;
pub use calendar::Calendar;
pub use report::{report, retention, Granularity, Query, RangeError};
pub use rollups::{Rollups, Rules, NAME};

#[cfg(test)]
mod tests;
