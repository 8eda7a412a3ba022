"""Assemble the ShareChain application from its modules.

Keepers are created once and handed to the modules that need them, each through the
narrowest interface it needs. The order of ``modules`` is the order of begin/end-block
hooks and of genesis initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sharechain.app.framework import Ante, App, Context
from sharechain.modules import auth, bank
from sharechain.modules.bank import FEE_COLLECTOR
from sharechain.modules.bank.keeper import BankKeeper


@dataclass
class Keepers:
    bank: BankKeeper
    extra: dict = field(default_factory=dict)  # module name -> keeper


def build_app(chain_id: str) -> tuple[App, Ante, Keepers]:
    bank_keeper = BankKeeper()
    keepers = Keepers(bank=bank_keeper)
    modules = [auth.module(), bank.module(bank_keeper)]
    modules += _extra_modules(keepers)
    app = App(modules, chain_id)

    def take_fee(ctx: Context, payer: bytes, fee: int) -> None:
        if fee:
            bank_keeper.withdraw(ctx, payer, fee)

    def pay_fees(ctx: Context, total: int) -> None:
        bank_keeper.deposit(ctx, FEE_COLLECTOR, total)

    app.pay_fees = pay_fees
    ante = Ante(app, auth.get_nonce, auth.set_nonce, take_fee, auth.fee_per_cost_unit)
    return app, ante, keepers


def _extra_modules(keepers: Keepers) -> list:
    """Sharing-economy modules, registered after the core ones.

    Each module adds its keeper to ``keepers.extra`` (by module name) and returns its
    Module; later modules find the keepers they need there.
    """
    mods: list = []
    # -- identity / assets / iot (registered in this order)
    from sharechain.modules import assets, identity, iot

    identity_keeper = identity.IdentityKeeper()
    assets_keeper = assets.AssetsKeeper(identity_keeper, keepers.bank)
    iot_keeper = iot.IotKeeper(assets_keeper)
    keepers.extra.update(identity=identity_keeper, assets=assets_keeper, iot=iot_keeper)
    mods += [identity.module(identity_keeper), assets.module(assets_keeper, identity_keeper),
             iot.module(iot_keeper, assets_keeper, identity_keeper)]
    # -- rental / incentive
    from sharechain.modules.rental import wiring

    rental_keeper, incentive_keeper, rental_mods = wiring.build(
        keepers.bank, identity_keeper, assets_keeper, iot_keeper)
    keepers.extra.update(rental=rental_keeper, incentive=incentive_keeper)
    mods += rental_mods
    # -- credit / arbitration (credit gates rental reservations and hears rental notices)
    from sharechain.modules import arbitration, credit

    credit_keeper = credit.CreditKeeper(identity_keeper, assets_keeper)
    rental_keeper.add_listener(credit_keeper.on_rental)
    rental_keeper.set_credit_gate(credit_keeper)
    arbitration_keeper = arbitration.ArbitrationKeeper(
        keepers.bank, identity_keeper, rental_keeper, assets_keeper, credit_keeper)
    keepers.extra.update(credit=credit_keeper, arbitration=arbitration_keeper)
    mods += [credit.module(credit_keeper), arbitration.module(arbitration_keeper)]
    # -- market (books through rental; shares the platform fee of cross-platform bookings)
    from sharechain.modules import market

    market_keeper = market.MarketKeeper(rental_keeper, identity_keeper, assets_keeper)
    rental_keeper.set_fee_splitter(market_keeper.split_platform_fee)
    keepers.extra.update(market=market_keeper)
    mods += [market.module(market_keeper)]
    return mods


def demo_app_state(accounts: dict[str, int]) -> dict:
    """Genesis sections of the sharing-economy modules for the devnet demo world."""
    state: dict = {}
    # -- identity / assets / iot
    from sharechain.modules.assets.genesis import demo_section as assets_demo
    from sharechain.modules.identity.genesis import demo_section as identity_demo
    from sharechain.modules.iot.genesis import demo_section as iot_demo

    state.update(identity=identity_demo(accounts), assets=assets_demo(accounts),
                 iot=iot_demo(accounts))
    # -- rental / incentive
    from sharechain.modules.incentive.genesis import demo_section as incentive_demo
    from sharechain.modules.rental.genesis import demo_section as rental_demo

    state.update(rental=rental_demo(), incentive=incentive_demo())
    # -- credit / arbitration (the demo arbiters join the identity genesis)
    from sharechain.modules.arbitration.genesis import demo_participants
    from sharechain.modules.arbitration.genesis import demo_section as arbitration_demo
    from sharechain.modules.credit.genesis import demo_section as credit_demo

    state["identity"]["participants"] += demo_participants(accounts)
    state.update(credit=credit_demo(accounts), arbitration=arbitration_demo(accounts))
    # -- market
    from sharechain.modules.market.genesis import demo_section as market_demo

    state.update(market=market_demo())
    return state
