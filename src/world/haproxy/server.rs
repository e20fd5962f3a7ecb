//! One server line of the backend: its runtime admin state, its health-check state machine
//! (HAProxy's rise/fall counter) and how `show stat` and `show servers state` name both.

use std::time::{Duration, Instant};

pub(super) const RISE: u32 = 2;
pub(super) const FALL: u32 = 3;
/// The proxy id of the `listen keystone_api` section.
pub(super) const BE_ID: u32 = 2;

/// A server's runtime admin state, as set with `set server BE/SRV state ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

impl AdminState {
    /// `srv_admin_state` bits: 0x01 forced maintenance, 0x08 forced drain.
    pub fn bits(self) -> u32 {
        match self {
            AdminState::Ready => 0,
            AdminState::Maint => 0x01,
            AdminState::Drain => 0x08,
        }
    }

    /// The word `set server ... state` takes.
    pub fn word(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

    /// Read `srv_admin_state`: any maintenance bit (forced, inherited, resolution, ...) wins over
    /// the drain bits.
    pub fn from_bits(bits: u32) -> AdminState {
        if bits & (0x01 | 0x02 | 0x04 | 0x20 | 0x40) != 0 {
            AdminState::Maint
        } else if bits & (0x08 | 0x10) != 0 {
            AdminState::Drain
        } else {
            AdminState::Ready
        }
    }
}

/// The outcome of one health check, with HAProxy's `HCHK_STATUS_*` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckStatus {
    Init,
    L4Tout,
    L4Con,
    L7Tout,
    L7Rsp,
    L7Ok(u16),
    L7Sts(u16),
}

impl CheckStatus {
    pub(super) fn passed(self) -> bool {
        matches!(self, CheckStatus::L7Ok(_))
    }

    /// `srv_check_status` in `show servers state`.
    pub(super) fn code(self) -> u32 {
        match self {
            CheckStatus::Init => 1,
            CheckStatus::L4Tout => 7,
            CheckStatus::L4Con => 8,
            CheckStatus::L7Tout => 12,
            CheckStatus::L7Rsp => 13,
            CheckStatus::L7Ok(_) => 15,
            CheckStatus::L7Sts(_) => 17,
        }
    }

    /// `srv_check_result`: 0 unknown, 2 failed, 3 passed.
    pub(super) fn result(self) -> u32 {
        match self {
            CheckStatus::Init => 0,
            s if s.passed() => 3,
            _ => 2,
        }
    }

    /// `check_status` in `show stat`.
    pub(super) fn name(self) -> &'static str {
        match self {
            CheckStatus::Init => "INI",
            CheckStatus::L4Tout => "L4TOUT",
            CheckStatus::L4Con => "L4CON",
            CheckStatus::L7Tout => "L7TOUT",
            CheckStatus::L7Rsp => "L7RSP",
            CheckStatus::L7Ok(_) => "L7OK",
            CheckStatus::L7Sts(_) => "L7STS",
        }
    }

    pub(super) fn http_code(self) -> Option<u16> {
        match self {
            CheckStatus::L7Ok(c) | CheckStatus::L7Sts(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn desc(self) -> &'static str {
        match self {
            CheckStatus::Init => "Initializing",
            CheckStatus::L4Tout => "Layer4 timeout",
            CheckStatus::L4Con => "Layer4 connection problem",
            CheckStatus::L7Tout => "Layer7 timeout",
            CheckStatus::L7Rsp => "Layer7 invalid response",
            CheckStatus::L7Ok(_) => "Layer7 check passed",
            CheckStatus::L7Sts(_) => "Layer7 wrong status",
        }
    }
}

/// One server line of the backend.
#[derive(Debug, Clone)]
pub(super) struct Server {
    pub(super) id: u32,
    pub(super) name: String,
    pub(super) port: u16,
    pub(super) admin: AdminState,
    /// Operational state from health checks (ignoring maintenance).
    pub(super) up: bool,
    /// HAProxy's check health counter: 0..=rise+fall-1, UP at or above `rise`.
    pub(super) health: u32,
    pub(super) check: CheckStatus,
    pub(super) check_duration_ms: u64,
    pub(super) last_change: Instant,
    pub(super) down_since: Option<Instant>,
    pub(super) downtime: Duration,
    pub(super) scur: u64,
    pub(super) smax: u64,
    pub(super) stot: u64,
    pub(super) econ: u64,
    pub(super) chkfail: u64,
    pub(super) chkdown: u64,
}

impl Server {
    /// A server as the configuration defines it, before any check (down, health 0, ready).
    pub(super) fn configured(now: Instant) -> Server {
        Server {
            id: 0,
            name: String::new(),
            port: 0,
            admin: AdminState::Ready,
            up: false,
            health: 0,
            check: CheckStatus::Init,
            check_duration_ms: 0,
            last_change: now,
            down_since: Some(now),
            downtime: Duration::ZERO,
            scur: 0,
            smax: 0,
            stot: 0,
            econ: 0,
            chkfail: 0,
            chkdown: 0,
        }
    }

    pub(super) fn usable(&self) -> bool {
        self.admin == AdminState::Ready && self.up
    }

    /// `srv_op_state`: 2 running, 0 stopped (a server in maintenance is stopped).
    pub(super) fn op_state(&self) -> u32 {
        if self.admin != AdminState::Maint && self.up {
            2
        } else {
            0
        }
    }

    /// `status` in `show stat`, as HAProxy 2.6 prints it (`srv_hlt_st` in stats.c): an up
    /// server below full health shows how far it is from it (`UP n/m`, n = health - rise + 1,
    /// m = fall), a down server on its way back how far it is from rising (`DOWN n/m`,
    /// n = health, m = rise).
    pub(super) fn status(&self) -> String {
        if self.admin == AdminState::Maint {
            return "MAINT".into();
        }
        if !self.up {
            return if self.health == 0 {
                "DOWN".into()
            } else {
                format!("DOWN {}/{RISE}", self.health)
            };
        }
        let word = if self.admin == AdminState::Drain {
            "DRAIN"
        } else {
            "UP"
        };
        if self.health < RISE + FALL - 1 {
            format!("{word} {}/{FALL}", (self.health + 1).saturating_sub(RISE))
        } else {
            word.into()
        }
    }

    pub(super) fn set_up(&mut self, up: bool, now: Instant) {
        if self.up == up {
            return;
        }
        self.up = up;
        self.last_change = now;
        if up {
            if let Some(since) = self.down_since.take() {
                self.downtime += now - since;
            }
        } else {
            self.chkdown += 1;
            self.down_since = Some(now);
        }
    }

    /// Apply a check result the way HAProxy's rise/fall counter does. Returns whether the
    /// operational state changed.
    pub(super) fn record_check(
        &mut self,
        status: CheckStatus,
        duration_ms: u64,
        now: Instant,
    ) -> bool {
        if self.admin == AdminState::Maint {
            // Checks are paused in maintenance; a result that raced the change is dropped.
            return false;
        }
        let was = self.up;
        self.check = status;
        self.check_duration_ms = duration_ms;
        if status.passed() {
            if self.health < RISE + FALL - 1 {
                self.health += 1;
                if self.health >= RISE {
                    self.health = RISE + FALL - 1;
                    self.set_up(true, now);
                }
            }
        } else {
            self.chkfail += 1;
            if self.health > RISE {
                self.health -= 1;
            } else {
                self.health = 0;
                self.set_up(false, now);
            }
        }
        was != self.up
    }

    /// Set the admin state; whether it changed.
    pub(super) fn set_admin(&mut self, state: AdminState, now: Instant) -> bool {
        if self.admin == state {
            return false;
        }
        let leaving_maint = self.admin == AdminState::Maint;
        self.admin = state;
        self.last_change = now;
        if leaving_maint {
            // As HAProxy: "start OK but check immediately" — one failed check takes it down.
            self.health = RISE;
            self.set_up(true, now);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ks1` of the test backend, as configured (before any check).
    fn ks1(now: Instant) -> Server {
        Server {
            id: 1,
            name: "ks1".into(),
            port: 5001,
            ..Server::configured(now)
        }
    }

    #[test]
    fn rise_and_fall_like_haproxy() {
        let now = Instant::now();
        let mut s = ks1(now);
        assert!(!s.record_check(CheckStatus::L7Ok(200), 1, now));
        assert!(
            s.record_check(CheckStatus::L7Ok(200), 1, now),
            "up after rise=2"
        );
        assert_eq!(s.health, 4);
        assert!(!s.record_check(CheckStatus::L4Con, 1, now));
        assert!(!s.record_check(CheckStatus::L4Con, 1, now));
        assert!(
            s.record_check(CheckStatus::L4Con, 1, now),
            "down after fall=3"
        );
        assert_eq!((s.up, s.health, s.chkdown), (false, 0, 1));
        // Leaving maintenance: up at once, but one failure takes it down again.
        s.set_admin(AdminState::Maint, now);
        assert!(
            !s.record_check(CheckStatus::L4Con, 1, now),
            "paused in maint"
        );
        s.set_admin(AdminState::Ready, now);
        assert!(s.up);
        assert!(s.record_check(CheckStatus::L4Con, 1, now));
        assert!(!s.up);
    }

    #[test]
    fn status_strings_like_haproxy_2_6() {
        let now = Instant::now();
        let mut s = ks1(now);
        assert_eq!(s.status(), "DOWN", "never checked: health 0");
        s.record_check(CheckStatus::L7Ok(200), 1, now);
        assert_eq!(s.status(), "DOWN 1/2", "on its way up: health/rise");
        s.record_check(CheckStatus::L7Ok(200), 1, now);
        assert_eq!(s.status(), "UP", "risen: full health at once");
        s.record_check(CheckStatus::L4Con, 1, now);
        assert_eq!(
            s.status(),
            "UP 2/3",
            "one failure: health - rise + 1 / fall"
        );
        s.record_check(CheckStatus::L4Con, 1, now);
        assert_eq!(s.status(), "UP 1/3");
        s.set_admin(AdminState::Drain, now);
        assert_eq!(s.status(), "DRAIN 1/3", "DRAIN takes the same suffix");
        s.record_check(CheckStatus::L7Ok(200), 1, now);
        assert_eq!(s.status(), "DRAIN");
        s.set_admin(AdminState::Maint, now);
        assert_eq!(s.status(), "MAINT");
        // `set server ... state ready` from maint: health = rise, up but unproven.
        s.set_admin(AdminState::Ready, now);
        assert_eq!((s.status().as_str(), s.health), ("UP 1/3", RISE));
        s.record_check(CheckStatus::L7Ok(200), 1, now);
        assert_eq!(s.status(), "UP", "one passed check proves it");
    }
}
