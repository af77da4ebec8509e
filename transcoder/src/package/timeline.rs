//! Segment boundaries, decided once on the decoded source frames and shared by every
//! rendition: segment *k* starts at the first frame at or after `first + k × target`, where
//! `first` is the first decodable frame (a source cut mid-GOP starts late; its first segment
//! is still a full one). Empty slots of a variable-frame-rate source are skipped, so indexes
//! stay dense; a gap longer than a segment makes that segment longer (there is no frame to
//! cut at). Because every rung sees
//! the same frames, the keyframes forced at these instants make segment *i* cover the same
//! time span in every rendition.

/// Times are in the video stream's time base, relative to the source start.
#[derive(Debug)]
pub(crate) struct Timeline {
    target: i64,
    boundaries: Vec<i64>,
    /// The first frame's time: the grid's origin.
    origin: i64,
    /// The latest decoded frame time: everything at or before it has a known segment.
    decoded_until: Option<i64>,
    finished: bool,
}

impl Timeline {
    /// `target` is the segment length in time-base units.
    pub(crate) fn new(target: i64) -> Self {
        Self {
            target: target.max(1),
            boundaries: Vec::new(),
            origin: 0,
            decoded_until: None,
            finished: false,
        }
    }

    /// Records a decoded frame; returns the index of the segment it opens, if it opens one.
    pub(crate) fn on_frame(&mut self, pts: i64) -> Option<usize> {
        self.decoded_until = Some(pts);
        let opens = match self.boundaries.last() {
            None => {
                self.origin = pts;
                true
            }
            // The slot this frame falls in is later than the last segment's slot.
            Some(&last) => {
                (pts - self.origin).div_euclid(self.target)
                    > (last - self.origin).div_euclid(self.target)
            }
        };
        if opens {
            self.boundaries.push(pts);
            Some(self.boundaries.len() - 1)
        } else {
            None
        }
    }

    /// No more frames will come: every time now has a segment.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    pub(crate) fn boundaries(&self) -> &[i64] {
        &self.boundaries
    }

    /// The segment that holds time `t`, or `None` while frames up to `t` are not decoded yet.
    pub(crate) fn segment_of(&self, t: i64) -> Option<usize> {
        let known = self.finished || self.decoded_until.is_some_and(|d| t <= d);
        if !known {
            return None;
        }
        // Times before the first frame belong to the first segment.
        Some(
            self.boundaries
                .partition_point(|&b| b <= t)
                .saturating_sub(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_the_first_frame_of_each_slot() {
        let mut t = Timeline::new(6);
        let opened: Vec<_> = (0..20).map(|pts| t.on_frame(pts)).collect();
        assert_eq!(t.boundaries(), &[0, 6, 12, 18]);
        assert_eq!(opened[6], Some(1));
        assert_eq!(opened[7], None);
    }

    #[test]
    fn gaps_do_not_create_empty_segments() {
        let mut t = Timeline::new(6);
        for pts in [0, 2, 4, 20, 22, 27] {
            t.on_frame(pts);
        }
        assert_eq!(t.boundaries(), &[0, 20, 27]);
        assert_eq!(t.segment_of(10), Some(0));
        assert_eq!(t.segment_of(26), Some(1));
    }

    #[test]
    fn late_start_and_unknown_future() {
        let mut t = Timeline::new(6);
        t.on_frame(3);
        assert_eq!(t.segment_of(0), Some(0));
        assert_eq!(t.segment_of(4), None);
        t.on_frame(7);
        assert_eq!(
            t.segment_of(7),
            Some(0),
            "the grid starts at the first frame"
        );
        t.on_frame(9);
        assert_eq!(t.segment_of(9), Some(1));
        t.finish();
        assert_eq!(t.segment_of(100), Some(1));
    }
}
