"""The chain table and its engine: order, first hit decides, every step in the trace."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from helpers import envelope, fixture_bytes
from rule_context import DOMAINS, TOKENS, MemoryDirectory, context, message, policy, ticket

from worker.decision import DecisionName, RuleName
from worker.pipeline import Mailgate
from worker.policy.chain import CHAIN, FALL_THROUGH, ChainResult, describe, run_chain, table
from worker.policy.context import RuleContext
from worker.policy.reference import resolve


def chain(ctx: RuleContext) -> ChainResult:
    """The chain after the resolution step, as the pipeline runs it."""
    tickets = MemoryDirectory((ctx.ticket,) if ctx.ticket else ())  # what the context found
    found = resolve(ctx.mail, ctx.envelope, ctx.policy, tickets, TOKENS, DOMAINS)
    return run_chain(ctx, found.step)


def run(ctx: RuleContext) -> tuple[str, str, list[tuple[str, bool]]]:
    result = chain(ctx)
    return result.decision, result.rule, [(s["rule"], s["hit"]) for s in result.trace]


def test_table_holds_every_rule_once_in_the_documented_order() -> None:
    """The order auditors read: duplicate first, unauthorized_sender before closed_ticket."""
    assert [str(rule.name) for rule, _ in CHAIN] == [
        "duplicate",
        "policy_in_force",
        "auto_generated",
        "quarantine",
        "suspected_bounce",
        "new_ticket",
        "unknown_ticket",
        "unauthorized_sender",
        "closed_ticket",
        "language",
    ]
    named = {rule.name for rule, _ in (*CHAIN, FALL_THROUGH)} | {RuleName.TICKET_REFERENCE}
    acting_later = {RuleName.OPERATOR, RuleName.HOLD_EXPIRED}  # records acting on a held one
    assert named | acting_later == set(RuleName)
    assert FALL_THROUGH[1] == DecisionName.ACCEPTED_FOLLOWUP
    assert all(describe(name) for name in RuleName)


def test_table_rows_pair_rule_decision_and_description() -> None:
    rows = table()
    assert rows[0][:2] == ("duplicate", "duplicate")
    assert ("new_ticket", "rejected_new_ticket") in [row[:2] for row in rows]
    assert rows[-1][:2] == ("(none hit: followup)", "accepted_followup")


def test_first_hit_decides_and_the_trace_stops_there() -> None:
    decision, rule, trace = run(context())
    assert (decision, rule) == ("rejected_new_ticket", "new_ticket")
    assert trace[0] == ("ticket_reference", False)
    assert trace[-1] == ("new_ticket", True)
    assert [hit for _, hit in trace].count(True) == 1
    assert [name for name, _ in trace[1:]] == [str(r.name) for r, _ in CHAIN[:6]]


def test_nothing_hit_is_an_accepted_followup() -> None:
    raw = message(subject="Re: [Ticket#1001] thanks", From="bob@partner.example")
    ctx = context(raw, sender="bob@partner.example", directory=MemoryDirectory((ticket(),)))
    decision, rule, trace = run(ctx)
    assert (decision, rule) == ("accepted_followup", "followup")
    assert len(trace) == 1 + len(CHAIN) + 1
    assert trace[-1] == ("followup", True)


def test_no_policy_quarantines_before_any_other_rule_runs() -> None:
    at = datetime(2017, 1, 1, tzinfo=UTC)
    decision, rule, trace = run(context(policy_id=None, at=at))
    assert (decision, rule) == ("quarantined", "policy_in_force")
    assert trace == [("ticket_reference", False), ("duplicate", False), ("policy_in_force", True)]


def test_a_switched_off_rule_is_a_miss_that_says_so() -> None:
    """With the language action off, an Italian Customer Care follow-up is accepted."""
    shipped = policy()
    document = shipped.document.model_copy(update={"actions": {RuleName.LANGUAGE: "off"}})
    care = MemoryDirectory(
        (ticket("2002", kind="customer_care", participants=("carla@customer.example",)),)
    )
    ctx = context(
        fixture_bytes("followup_customer_care_it.eml"),
        sender="carla@customer.example",
        directory=care,
    )
    decision, _, _ = run(ctx)
    assert decision == "rejected_language"
    ctx = replace(ctx, policy=replace(shipped, document=document))
    result = chain(ctx)
    assert result.decision == "accepted_followup"
    step = next(s for s in result.trace if s["rule"] == "language")
    assert step == {
        "rule": "language",
        "hit": False,
        "reason": "action switched off by policy wildix-2022-04",
    }


def test_a_held_rule_decides_held_and_says_what_it_held_back() -> None:
    """With ``language = "hold"`` the rule's hit decides ``held``; the rule is recorded."""
    shipped = policy()
    document = shipped.document.model_copy(update={"actions": {RuleName.LANGUAGE: "hold"}})
    care = MemoryDirectory(
        (ticket("2002", kind="customer_care", participants=("carla@customer.example",)),)
    )
    ctx = context(
        fixture_bytes("followup_customer_care_it.eml"),
        sender="carla@customer.example",
        directory=care,
    )
    result = chain(replace(ctx, policy=replace(shipped, document=document)))
    assert (result.decision, result.rule) == (DecisionName.HELD, RuleName.LANGUAGE)
    assert result.trace[-1]["hit"] and result.trace[-1]["reason"].endswith(
        "rejected_language held for an operator by policy wildix-2022-04"
    )


def test_explain_shows_descriptions_that_stored_traces_do_not_carry(gate: Mailgate) -> None:
    """``explain`` adds each rule's description; the recorded trace keeps its old shape."""
    raw = fixture_bytes("new_ticket.eml")
    explained = gate.explain(raw, envelope("alice@customer.example"))
    assert [s["description"] for s in explained.trace] == [
        describe(s["rule"]) for s in explained.trace
    ]
    assert explained.trace[-2]["description"] == (
        "mail without a ticket reference cannot open a ticket"
    )
    recorded = gate.ingest(raw, envelope("alice@customer.example"))
    assert all(set(step) == {"rule", "hit", "reason"} for step in recorded.trace)


def test_readme_rule_table_is_the_chain_table() -> None:
    """The README's rule-chain table is ``table()``, row for row, after the resolution step."""
    from helpers import ROOT

    from worker.policy import reference

    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| rule | decision on a hit | what it checks |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(tuple(cell.strip().replace("`", "") for cell in line.strip("|").split("|")))
    first, *chain_rows = rows
    assert first == (
        "ticket_reference (before the chain)",
        "— (finds the reference and the ticket)",
        reference.DESCRIPTION,
    )
    assert chain_rows == table()
