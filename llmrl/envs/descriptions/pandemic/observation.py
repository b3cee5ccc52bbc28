import enum

import numpy as np

__all__ = ["PandemicObservation", "InfectionSummary", "sorted_infection_summary"]


class InfectionSummary(enum.Enum):
    NONE = "none (N)"            # never infected, or exposed but not yet infectious
    INFECTED = "infected (I)"    # infected with COVID-19 (pre-symptomatic, asymptomatic or symptomatic)
    CRITICAL = "critical (C)"    # needs a hospital or is in one
    RECOVERED = "recovered (R)"
    DEAD = "dead (D)"


# index order of every summary vector below: CRITICAL, DEAD, INFECTED, NONE, RECOVERED
sorted_infection_summary = sorted(InfectionSummary, key=lambda s: s.value)


class PandemicObservation:
    """A town of 500 people (homes, offices, schools, shops, a hospital with 5 beds) in an epidemic.
    One step is one day. Every day the government sets a regulation stage, 0 (no restrictions) to 4
    (most severe). The observation holds the day that just passed, sampled 3 times (every 8 hours):
    index -1 of the first axis is the most recent sample. Each summary is a vector of proportions of
    the population (summing to 1) indexed by sorted_infection_summary, e.g.
    obs.global_infection_summary[-1, -1, sorted_infection_summary.index(InfectionSummary.CRITICAL)].
    A second variant (delta) appears on a random day between day 95 and day 104.

    stage                          -- numpy array (3, 1, 1): the regulation stage in force (0-4)
    global_infection_summary       -- numpy array (3, 1, 5): true proportions of each infection state
                                      (a person infected with both variants counts in the more severe state)
    global_infection_summary_alpha -- numpy array (3, 1, 5): the same for the original (alpha) variant only
    global_infection_summary_delta -- numpy array (3, 1, 5): the same for the delta variant only
    global_testing_summary         -- numpy array (3, 1, 5): proportions by latest test result (what testing
                                      shows: untested and negative people count as NONE)
    global_testing_summary_alpha   -- numpy array (3, 1, 5): test results for the alpha variant
    global_testing_summary_delta   -- numpy array (3, 1, 5): test results for the delta variant
    infection_above_threshold      -- numpy array (3, 1, 1): 1.0 if at least 10 people currently test positive
    time_day                       -- numpy array (3, 1, 1): (day * 24 + hour) / (365 * 24) of each sample
    history                        -- numpy array (24, 33): the last 8 days, 3 samples a day, oldest first; a row
                                      is time_day, stage, infection_above_threshold, then the six summaries above
                                      in the order listed (infection, alpha, delta, testing, alpha, delta)
    state                          -- None (the simulator's internal state is not exposed)
    raw                            -- the raw vector (history flattened)
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.history = self.raw.reshape(-1, 33)
        day = self.history[-3:][:, None, :]
        self.time_day = day[:, :, 0:1].copy()
        self.stage = day[:, :, 1:2].copy()
        self.infection_above_threshold = day[:, :, 2:3].copy()
        self.global_infection_summary = day[:, :, 3:8].copy()
        self.global_infection_summary_alpha = day[:, :, 8:13].copy()
        self.global_infection_summary_delta = day[:, :, 13:18].copy()
        self.global_testing_summary = day[:, :, 18:23].copy()
        self.global_testing_summary_alpha = day[:, :, 23:28].copy()
        self.global_testing_summary_delta = day[:, :, 28:33].copy()
        self.state = None

    @property
    def infection_summary_labels(self):
        return [s.value for s in sorted_infection_summary]
