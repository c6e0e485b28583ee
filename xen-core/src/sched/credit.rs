//! The scheduler's policy, a credit scheduler in the spirit of Xen's credit1, with no hardware
//! in it: who runs next and for how long. The hypervisor feeds it wake-ups, sleeps and the time
//! each vCPU ran, and asks it to pick.
//!
//! - Every `period_ns` the CPU time of the period is handed out as credit to the entities that
//!   are active (runnable, or ran during the period), in proportion to their weights. Credit is
//!   clamped to one period either way, so sleeping does not bank an unbounded claim.
//! - Running costs credit ns for ns. Entities with credit (zero or more) are UNDER, the others OVER; an entity
//!   waking from sleep with credit left is BOOSTed for its next run, which is what keeps an
//!   interactive domain's latency low next to a CPU hog.
//! - `pick` takes BOOST before UNDER before OVER, then the most credit, then the least recently
//!   run; a running entity is preempted at the end of its slice or when a BOOSTed one wakes.
//! - A cap (percent of one CPU) parks an entity for the rest of the period once it has used its
//!   share, even if the CPU would otherwise idle.

use alloc::vec::Vec;

/// The shortest run the policy hands out: shorter ones cost more in switching than they give.
pub const MIN_RUN_NS: u64 = 100_000;

/// Scheduling parameters of one entity (a vCPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Relative share (Xen's default is 256).
    pub weight: u32,
    /// Most CPU it may use, in percent of one CPU; 0 = no cap.
    pub cap_pct: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { weight: 256, cap_pct: 0 }
    }
}

#[derive(Clone, Debug)]
struct Entity {
    params: Params,
    credit_ns: i64,
    used_in_period_ns: u64,
    is_runnable: bool,
    is_boosted: bool,
    is_parked: bool,
    is_dead: bool,
    last_run: u64,
}

/// The policy state for one CPU's worth of entities.
#[derive(Clone, Debug)]
pub struct Credit {
    ents: Vec<Entity>,
    pub slice_ns: u64,
    pub period_ns: u64,
    next_refill_ns: u64,
    clock: u64,
    /// The entity that yielded (SCHEDOP_yield) since the last pick.
    yielded: Option<usize>,
}

/// The default time slice and credit period.
pub const DEFAULT_SLICE_NS: u64 = 10_000_000;
pub const DEFAULT_PERIOD_NS: u64 = 30_000_000;
/// The shortest period accepted.
const MIN_PERIOD_NS: u64 = 1_000_000;

impl Credit {
    /// A policy with `slice_ns` runs in `period_ns` credit periods (each at least its minimum);
    /// `const`, so it can initialise a static.
    pub const fn new(slice_ns: u64, period_ns: u64) -> Self {
        Credit {
            ents: Vec::new(),
            slice_ns: if slice_ns < MIN_RUN_NS { MIN_RUN_NS } else { slice_ns },
            period_ns: if period_ns < MIN_PERIOD_NS { MIN_PERIOD_NS } else { period_ns },
            next_refill_ns: 0,
            clock: 0,
            yielded: None,
        }
    }

    /// Adds an entity (not yet runnable); returns its id.
    pub fn add(&mut self, params: Params) -> usize {
        self.ents.push(Entity {
            params: sanitize(params),
            credit_ns: 0,
            used_in_period_ns: 0,
            is_runnable: false,
            is_boosted: false,
            is_parked: false,
            is_dead: false,
            last_run: 0,
        });
        self.ents.len() - 1
    }

    /// Removes an entity for good.
    pub fn remove(&mut self, id: usize) {
        if let Some(e) = self.ents.get_mut(id) {
            e.is_dead = true;
            e.is_runnable = false;
        }
    }

    pub fn params(&self, id: usize) -> Option<Params> {
        self.ents.get(id).map(|e| e.params)
    }

    pub fn set_params(&mut self, id: usize, params: Params) {
        if let Some(e) = self.ents.get_mut(id) {
            e.params = sanitize(params);
        }
    }

    /// The entity became runnable. Returns true when it is BOOSTed (it should preempt a
    /// running entity that is not).
    pub fn wake(&mut self, id: usize) -> bool {
        let Some(e) = self.ents.get_mut(id).filter(|e| !e.is_dead) else { return false };
        if e.is_runnable {
            return false;
        }
        e.is_runnable = true;
        e.is_boosted = e.credit_ns >= 0 && !e.is_parked;
        e.is_boosted
    }

    /// The entity stopped being runnable (blocked, paused, down).
    pub fn sleep(&mut self, id: usize) {
        if let Some(e) = self.ents.get_mut(id) {
            e.is_runnable = false;
            e.is_boosted = false;
        }
    }

    /// Charges `ran_ns` of CPU to `id`.
    pub fn account(&mut self, id: usize, ran_ns: u64) {
        let period = self.period_ns;
        let Some(e) = self.ents.get_mut(id) else { return };
        e.credit_ns = e.credit_ns.saturating_sub(ran_ns as i64).max(-(period as i64));
        e.used_in_period_ns += ran_ns;
        e.is_boosted = false;
        e.is_parked = e.is_over_cap(period);
    }

    /// Hands out a period's credit if one has passed since the last time.
    fn refill(&mut self, now: u64) {
        if now < self.next_refill_ns {
            return;
        }
        let periods = if self.next_refill_ns == 0 {
            1
        } else {
            1 + (now - self.next_refill_ns) / self.period_ns
        };
        // The refills stay on their grid: a refill handled late (the timer interrupt came
        // late, or the CPU was busy) does not stretch the period after it.
        self.next_refill_ns = if self.next_refill_ns == 0 {
            now + self.period_ns
        } else {
            self.next_refill_ns + periods * self.period_ns
        };
        let active = |e: &Entity| !e.is_dead && (e.is_runnable || e.used_in_period_ns > 0);
        let total: u64 =
            self.ents.iter().filter(|e| active(e)).map(|e| u64::from(e.params.weight)).sum();
        let period = self.period_ns as i64;
        for e in self.ents.iter_mut() {
            if total > 0 && active(e) {
                let share = (self.period_ns * periods.min(4)) as u128 * u128::from(e.params.weight)
                    / u128::from(total);
                e.credit_ns = (e.credit_ns + share as i64).min(period);
            }

            // What a capped entity ran past its budget (its slice ended by a late interrupt)
            // is debt: it is paid from the next periods' budgets, so a late timer cannot
            // raise its share. Uncapped entities only need the period's usage to look active.
            e.used_in_period_ns = match e.cap_budget(self.period_ns) {
                Some(budget) => e.used_in_period_ns.saturating_sub(budget * periods),
                None => 0,
            };
            e.is_parked = e.is_over_cap(self.period_ns);
        }
    }

    /// The entity yields (SCHEDOP_yield): at the next pick any other runnable entity goes
    /// first, whatever its priority, once. As with Xen's credit1, a yield is a real yield even
    /// to a domain that has used more than its share; the yielder is back at the pick after.
    pub fn yield_(&mut self, id: usize) {
        self.yielded = Some(id);
    }

    /// Chooses what runs next at time `now` (ns); `None` means idle. A pending yield is
    /// consumed here, whatever the outcome.
    pub fn pick(&mut self, now: u64) -> Option<usize> {
        self.refill(now);
        let yielded = self.yielded.take();
        let best_of = |skip: Option<usize>| {
            self.ents
                .iter()
                .enumerate()
                .filter(|&(i, e)| e.is_runnable && !e.is_parked && !e.is_dead && Some(i) != skip)
                .max_by_key(|(_, e)| {
                    let class = if e.is_boosted {
                        2
                    } else if e.credit_ns >= 0 {
                        1
                    } else {
                        0
                    };
                    (class, e.credit_ns, core::cmp::Reverse(e.last_run))
                })
                .map(|(i, _)| i)
        };
        // Anyone but the yielder first; the yielder itself if nobody else can run.
        let best = best_of(yielded).or_else(|| best_of(None))?;
        self.clock += 1;
        self.ents[best].last_run = self.clock;
        Some(best)
    }

    /// How long `id` may run from `now` before the scheduler must decide again: the slice,
    /// shortened by what its cap leaves and by the next refill.
    pub fn run_for(&self, id: usize, now: u64) -> u64 {
        let mut t = self.slice_ns;
        if let Some(e) = self.ents.get(id)
            && let Some(budget) = e.cap_budget(self.period_ns)
        {
            t = t.min(budget.saturating_sub(e.used_in_period_ns));
        }
        t.min(self.next_refill_ns.saturating_sub(now)).max(MIN_RUN_NS)
    }

    /// Time of the next refill (when parked entities may run again).
    pub fn next_refill(&self) -> u64 {
        self.next_refill_ns
    }

    /// Whether some runnable entity waits for the next refill because of its cap: an idle CPU
    /// must then wake up at the refill, not just at the next timer.
    pub fn has_parked(&self) -> bool {
        self.ents.iter().any(|e| e.is_parked && e.is_runnable && !e.is_dead)
    }
}

impl Entity {
    /// The CPU time a capped entity may use per period; `None` when it has no cap.
    fn cap_budget(&self, period_ns: u64) -> Option<u64> {
        (self.params.cap_pct != 0).then(|| period_ns * u64::from(self.params.cap_pct) / 100)
    }

    /// Whether what is left of the cap's budget (debt included) is too small to be worth a run.
    fn is_over_cap(&self, period_ns: u64) -> bool {
        self.cap_budget(period_ns).is_some_and(|b| self.used_in_period_ns + MIN_RUN_NS >= b)
    }
}

fn sanitize(p: Params) -> Params {
    Params { weight: p.weight.clamp(1, 65535), cap_pct: p.cap_pct.min(100) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Runs always-runnable entities for `total` ns of simulated time; returns CPU time each.
    fn simulate(c: &mut Credit, n: usize, total: u64) -> Vec<u64> {
        let mut used = alloc::vec![0u64; n];
        let mut now = 0;
        while now < total {
            match c.pick(now) {
                Some(id) => {
                    let t = c.run_for(id, now);
                    c.account(id, t);
                    used[id] += t;
                    now += t;
                }
                None => now = c.next_refill().max(now + 1),
            }
        }
        used
    }

    #[test]
    fn weights_share_the_cpu_proportionally() {
        let mut c = Credit::new(10 * MS, 30 * MS);
        let a = c.add(Params { weight: 512, cap_pct: 0 });
        let b = c.add(Params { weight: 256, cap_pct: 0 });
        c.wake(a);
        c.wake(b);
        let used = simulate(&mut c, 2, 3000 * MS);
        let ratio = used[a] as f64 / used[b] as f64;
        assert!((1.9..=2.1).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn a_yield_lets_another_run_even_one_with_less_credit_once() {
        let mut c = Credit::new(10 * MS, 30 * MS);
        let (a, b) = (c.add(Params::default()), c.add(Params::default()));
        c.wake(a);
        c.wake(b);
        assert!(c.pick(0).is_some());
        // b has used more than its share: OVER, while a is UNDER.
        c.account(b, 25 * MS);
        c.account(a, MS);
        assert_eq!(c.pick(MS), Some(a), "without a yield, the one with credit runs");
        c.yield_(a);
        assert_eq!(c.pick(MS), Some(b), "a yield steps aside for the other, OVER or not");
        assert_eq!(c.pick(MS), Some(a), "once: then the policy decides again");
        // Alone, a yield comes straight back.
        c.sleep(b);
        c.yield_(a);
        assert_eq!(c.pick(MS), Some(a));
        // A yield is spent by the next pick even when nothing runs: it does not resurface later.
        c.yield_(a);
        c.sleep(a);
        assert_eq!(c.pick(MS), None);
        c.wake(a);
        c.wake(b);
        assert_eq!(c.pick(MS), Some(a), "an old yield must not make a step aside now");
    }

    #[test]
    fn equal_weights_alternate() {
        let mut c = Credit::new(10 * MS, 30 * MS);
        let ids: Vec<_> = (0..3).map(|_| c.add(Params::default())).collect();
        for &i in &ids {
            c.wake(i);
        }
        let used = simulate(&mut c, 3, 3000 * MS);
        for u in &used {
            assert!((950 * MS..=1050 * MS).contains(u), "{used:?}");
        }
    }

    #[test]
    fn cap_limits_even_on_an_idle_cpu() {
        let mut c = Credit::new(10 * MS, 30 * MS);
        let a = c.add(Params { weight: 256, cap_pct: 25 });
        c.wake(a);
        let used = simulate(&mut c, 1, 3000 * MS);
        let pct = used[a] * 100 / (3000 * MS);
        assert!((23..=27).contains(&pct), "{pct}%");
    }

    /// The hypervisor ends a run with a timer interrupt that can come late (a busy host
    /// deschedules the emulator; real hardware has SMIs): the run is then charged more than
    /// `run_for` granted. A capped hog must still get its cap over time, not cap + lateness.
    #[test]
    fn cap_holds_when_every_run_ends_late() {
        for late_max in [MS, 3 * MS, 8 * MS, 25 * MS] {
            let mut c = Credit::new(10 * MS, 30 * MS);
            let a = c.add(Params { weight: 256, cap_pct: 25 });
            c.wake(a);
            let (mut used, mut now, mut seed) = (0u64, 0u64, 0x2545_f491_4f6c_dd1du64);
            let total = 6000 * MS;
            while now < total {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let late = seed % late_max;
                match c.pick(now) {
                    Some(id) => {
                        let t = c.run_for(id, now) + late;
                        c.account(id, t);
                        used += t;
                        now += t;
                    }
                    // The idle CPU's wake-up for the refill is late too.
                    None => now = c.next_refill().max(now + 1) + late,
                }
            }
            let pct = used * 100 / now;
            assert!((23..=27).contains(&pct), "late by up to {late_max} ns: {pct}%");
        }
    }

    #[test]
    fn a_waking_sleeper_is_boosted_ahead_of_a_hog() {
        let mut c = Credit::new(10 * MS, 30 * MS);
        let hog = c.add(Params::default());
        let io = c.add(Params::default());
        c.wake(hog);
        simulate(&mut c, 2, 300 * MS);
        // The interactive entity slept all along; it wakes with credit and goes first.
        assert!(c.wake(io));
        assert_eq!(c.pick(300 * MS), Some(io));
        c.account(io, 100_000);
        c.sleep(io);
        assert_eq!(c.pick(301 * MS), Some(hog));
    }

    #[test]
    fn a_mostly_sleeping_entity_keeps_its_boost() {
        let mut c = Credit::new(10 * MS, 30 * MS);
        let hog = c.add(Params::default());
        let io = c.add(Params::default());
        c.wake(hog);
        let mut now = 0;
        for round in 0..200 {
            // The interactive entity wakes every 5 ms, runs 0.2 ms, sleeps again.
            if round % 5 == 0 {
                assert!(c.wake(io) || round == 0, "boost lost at round {round}");
                assert_eq!(c.pick(now), Some(io), "round {round}");
                c.account(io, 200_000);
                c.sleep(io);
                now += 200_000;
            }
            let id = c.pick(now).unwrap();
            c.account(id, MS);
            now += MS;
        }
    }

    #[test]
    fn idle_when_nothing_runs_and_dead_entities_never_return() {
        let mut c = Credit::new(10 * MS, 30 * MS);
        let a = c.add(Params::default());
        assert_eq!(c.pick(0), None);
        c.wake(a);
        c.remove(a);
        assert_eq!(c.pick(MS), None);
        assert!(!c.wake(a));
    }
}
