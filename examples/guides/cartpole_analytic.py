# A hand-written guide for CartPole-v1 (env=cartpole): push the cart the way the pole is falling,
# with damping on the pole's angular velocity and a little centring of the cart. Balances every
# evaluation episode for the full 500 steps. Check it:
#   python scripts/evaluate_policy.py examples/guides/cartpole_analytic.py env=cartpole
from observations import CartPoleObservation


class CartPolePolicy:
    def act(self, obs: CartPoleObservation) -> int:
        lean = obs.pole_angle + 0.5 * obs.pole_angular_velocity + 0.01 * obs.cart_position + 0.1 * obs.cart_velocity
        return 1 if lean > 0 else 0
