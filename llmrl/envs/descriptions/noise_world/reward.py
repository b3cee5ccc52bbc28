def reward(prev_obs, action, next_obs, info):
    """-1 per step. Stepping onto a trap cell (code 4) gives -n^5 and ends the episode.
    Standing on the goal after all milestones have been visited in order gives +n^3 and ends
    the episode; on boards without milestones that is simply reaching the goal.

    info["milestones_reached"] and info["milestones_total"] count the milestones (0 or 2).
    """
    n = next_obs.n
    if next_obs.cell(next_obs.agent_row, next_obs.agent_col) == 4:
        return -float(n**5)
    at_goal = (next_obs.agent_row, next_obs.agent_col) == (next_obs.goal_row, next_obs.goal_col)
    if at_goal and info["milestones_reached"] == info["milestones_total"]:
        return float(n**3)
    return -1.0
