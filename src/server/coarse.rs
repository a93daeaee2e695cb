//! The clocks read on every request, taken from the kernel's coarse clocks: the time of the
//! last timer tick (at most a few milliseconds old), read from the vDSO without the CPU's time
//! stamp counter. On the machines measured a coarse read costs ~3 ns against ~21 ns for the
//! precise clocks `Instant::now` and `SystemTime::now` read. Used only where a few
//! milliseconds do not matter: the header-read deadline and the second of the `Date` header.

use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};

fn read(clock: ClockId) -> Duration {
    let t = clock_gettime(clock);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Monotonic time (since an unspecified start), to a tick.
pub(super) fn monotonic() -> Duration {
    read(ClockId::MonotonicCoarse)
}

/// Whole seconds since the Unix epoch, to a tick.
pub(super) fn unix_seconds() -> u64 {
    read(ClockId::RealtimeCoarse).as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clocks_follow_the_precise_ones() {
        let precise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // A tick is at most 10 ms (HZ=100): the coarse second is the precise one or the one before.
        let coarse = unix_seconds();
        assert!(
            coarse + 1 >= precise && coarse <= precise + 1,
            "{coarse} vs {precise}"
        );
        let a = monotonic();
        std::thread::sleep(Duration::from_millis(30));
        let b = monotonic();
        assert!(b > a && b - a >= Duration::from_millis(15), "{a:?} {b:?}");
        assert!(b - a < Duration::from_secs(5));
    }
}
