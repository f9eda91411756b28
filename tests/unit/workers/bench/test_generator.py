"""The data generator: valid, realistic, deterministic data and a bulk load the store accepts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from shared import identifiers, store
from shared.commands import RegisterPlacement
from shared.models import JobOrder, OrderDraft, OrderStatus
from shared.municipalities import MUNICIPALITIES, MUNICIPALITY_POSTCODES
from workers.bench.generator import OCCUPATIONS, Generator, employers_for, load_orders

TODAY = date(2026, 11, 26)


@pytest.mark.parametrize("seed", [pytest.param(seed, id=f"seed-{seed}") for seed in (0, 1, 42)])
def test_every_generated_order_is_a_valid_order_json(seed: int) -> None:
    generator = Generator(seed, today=TODAY)
    for document in generator.orders(400):
        draft = OrderDraft.model_validate(document)
        assert draft.address.postcode in MUNICIPALITY_POSTCODES[draft.address.municipality]
        assert draft.placement_deadline > TODAY


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data() -> None:
    first = list(Generator(5, today=TODAY).orders(50))
    again = list(Generator(5, today=TODAY).orders(50))
    other = list(Generator(6, today=TODAY).orders(50))
    assert first == again
    assert first != other


def test_employers_have_valid_cvr_and_p_numbers() -> None:
    generator = Generator(3, today=TODAY, employers=500)
    for employer in generator.employers:
        assert identifiers.validate_cvr(employer.cvr) == employer.cvr
        assert identifiers.validate_p_number(employer.p_number) == employer.p_number
    assert len({employer.cvr for employer in generator.employers}) > 490


def test_cpr_numbers_have_real_dates_and_a_mix_of_modulus_11() -> None:
    generator = Generator(9, today=TODAY)
    numbers = [generator.cpr() for _ in range(2_000)]
    for number in numbers:
        assert identifiers.validate_cpr(number) == number
        assert 1940 <= identifiers.cpr_birth_date(number).year <= 2008
    passing = sum(identifiers.cpr_passes_modulus11(number) for number in numbers)
    assert 0 < passing < len(numbers), "both kinds occur"
    assert 0.6 < passing / len(numbers) < 0.8


@pytest.mark.parametrize(
    "modulus11", [pytest.param(True, id="passing"), pytest.param(False, id="failing")]
)
def test_a_cpr_can_be_asked_for_with_or_without_modulus_11(modulus11: bool) -> None:
    generator = Generator(11, today=TODAY)
    for _ in range(200):
        assert identifiers.cpr_passes_modulus11(generator.cpr(modulus11=modulus11)) is modulus11


def test_data_spreads_over_municipalities_and_occupations() -> None:
    generator = Generator(2, today=TODAY, employers=2_000)
    documents = list(generator.orders(3_000))
    municipalities = {d["address"]["municipality"] for d in documents}
    occupations = {d["occupation"]["disco"] for d in documents}
    assert len(municipalities) > 80
    assert municipalities <= set(MUNICIPALITIES)
    assert len(occupations) > len(OCCUPATIONS) * 0.9
    assert all(d["occupation"]["disco"] in {o.disco for o in OCCUPATIONS} for d in documents)


def test_stored_orders_have_every_status_and_open_ones_a_deadline_ahead() -> None:
    generator = Generator(4, today=TODAY)
    orders = [generator.job_order(order_id) for order_id in range(1, 501)]
    assert {order.status for order in orders} == set(OrderStatus)
    for order in orders:
        if order.status is OrderStatus.PROCESSING:
            assert order.placement_deadline > TODAY
        assert order.created_at <= order.updated_at


def test_placement_payloads_are_valid_commands() -> None:
    generator = Generator(8, today=TODAY)
    for order_id in range(1, 101):
        RegisterPlacement.model_validate(generator.placement(order_id))


def test_bulk_load_writes_what_the_store_reads(tmp_path: Path) -> None:
    path = tmp_path / "bulk.db"
    first, last = load_orders(path, 1_234, seed=1, today=TODAY, progress=False)
    assert (first, last) == (1, 1_234)
    again, _ = load_orders(path, 10, seed=2, today=TODAY, progress=False)
    assert again == 1_235, "a second load appends after the existing orders"
    target = store.SqliteStore(path)
    try:
        conn = target.connection()
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 1_244
        order = store.load_order(conn, 1)
        assert order == Generator(1, today=TODAY, employers=employers_for(1_234)).job_order(1)
        row = conn.execute("SELECT status, municipality FROM orders WHERE id = 1").fetchone()
        assert (row["status"], row["municipality"]) == (
            order.status.value,
            order.address.municipality,
        )
        assert isinstance(order, JobOrder)
    finally:
        target.close()
