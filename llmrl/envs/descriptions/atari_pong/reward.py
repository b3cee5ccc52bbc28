def reward(prev_obs, action, next_obs, info):
    """+1 for each point you win, -1 for each point the opponent wins during the step.
    Scores are read from the console RAM before and after the step:
    info["prev_ram"][14] / info["ram"][14] is your score, [13] the opponent's."""
    mine = int(info["ram"][14]) - int(info["prev_ram"][14])
    theirs = int(info["ram"][13]) - int(info["prev_ram"][13])
    return float(mine - theirs)
