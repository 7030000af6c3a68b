"""`write_rule.write_synced_items` against a fake client: which call each kind of view gets."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from hindsight.online_sync.codec import KEY_ATTR, ORDER_ATTR, WRITER_ATTR
from hindsight.online_sync.write_rule import MAX_TRANSACTION_ITEMS, write_synced_items
from hindsight.registry_sync.model import Feature, FeatureView


def view(push: bool) -> FeatureView:
    return FeatureView("v", "batch", ("user",), ("user_id",), "ts", None, None, True, "/tmp/v",
                       (Feature("a", "int64"),), push=push)


def entry(key: str, order: int) -> tuple[str, int, dict]:
    return key, order, {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": "sync"}, ORDER_ATTR: {"N": str(order)}}


class FakeDynamo:
    """A table of entity -> order; conditional transactions fail as DynamoDB's do."""

    def __init__(self, online: dict[str, int] | None = None, conflicts: int = 0):
        self.online = dict(online or {})
        self.calls: list[str] = []
        self.conflicts = conflicts

    def batch_write_item(self, RequestItems):
        self.calls.append("batch_write_item")
        for request in RequestItems["t"]:
            item = request["PutRequest"]["Item"]
            self.online[item[KEY_ATTR]["S"]] = int(item[ORDER_ATTR]["N"])
        return {"UnprocessedItems": {}}

    def batch_get_item(self, RequestItems):
        self.calls.append("batch_get_item")
        keys = [k[KEY_ATTR]["S"] for k in RequestItems["t"]["Keys"]]
        found = [{KEY_ATTR: {"S": k}, ORDER_ATTR: {"N": str(self.online[k])}} for k in keys if k in self.online]
        return {"Responses": {"t": found}, "UnprocessedKeys": {}}

    def transact_write_items(self, TransactItems):
        self.calls.append(f"transact_write_items:{len(TransactItems)}")
        assert len(TransactItems) <= MAX_TRANSACTION_ITEMS
        if self.conflicts:
            self.conflicts -= 1
            self._cancel([{"Code": "TransactionConflict"}] * len(TransactItems))
        reasons = []
        for op in TransactItems:
            put = op["Put"]
            assert put["ConditionExpression"] == "attribute_not_exists(#o) OR #o <= :o"
            key, order = put["Item"][KEY_ATTR]["S"], int(put["ExpressionAttributeValues"][":o"]["N"])
            reasons.append({"Code": "ConditionalCheckFailed" if self.online.get(key, -1) > order else "None"})
        if any(r["Code"] != "None" for r in reasons):
            self._cancel(reasons)
        for op in TransactItems:
            self.online[op["Put"]["Item"][KEY_ATTR]["S"]] = int(op["Put"]["ExpressionAttributeValues"][":o"]["N"])
        return {}

    @staticmethod
    def _cancel(reasons):
        raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "canceled"},
                           "CancellationReasons": reasons}, "TransactWriteItems")


def test_a_view_without_push_writes_blind_batches():
    fake = FakeDynamo({"a": 50})
    counts = write_synced_items(fake, "t", view(False), [entry(str(i), 10) for i in range(30)] + [entry("a", 5)],
                                check_online=False)
    assert counts == (31, 0)
    assert fake.calls == ["batch_write_item", "batch_write_item"] and fake.online["a"] == 5


def test_an_incremental_sync_of_a_view_without_push_drops_rows_older_than_online():
    fake = FakeDynamo({"a": 50, "b": 5})
    counts = write_synced_items(fake, "t", view(False), [entry("a", 10), entry("b", 10), entry("c", 1)],
                                check_online=True)
    assert (counts.written, counts.skipped) == (2, 1)
    assert fake.online == {"a": 50, "b": 10, "c": 1}


def test_a_push_view_writes_newest_wins_transactions_and_counts_the_losers():
    fake = FakeDynamo({"a": 50, "b": 10})
    rows = [entry("a", 10), entry("b", 10), *(entry(f"n{i}", 1) for i in range(150))]
    counts = write_synced_items(fake, "t", view(True), rows, check_online=False)
    assert (counts.written, counts.skipped) == (151, 1)  # an equal order is written: same event
    assert fake.online["a"] == 50 and fake.online["n149"] == 1
    # 100 + 52 rows; the first transaction is canceled by "a" and resent without it.
    assert fake.calls == ["transact_write_items:100", "transact_write_items:99", "transact_write_items:52"]


def test_a_push_view_resends_after_a_conflict_and_duplicate_keys_keep_the_newest():
    fake = FakeDynamo(conflicts=1)
    counts = write_synced_items(fake, "t", view(True), [entry("a", 3), entry("a", 7), entry("b", 1)], check_online=True)
    assert (counts.written, counts.skipped) == (2, 1)
    assert fake.online == {"a": 7, "b": 1}
    assert fake.calls == ["batch_get_item", "transact_write_items:2", "transact_write_items:2"]


def test_other_transaction_errors_are_raised():
    fake = FakeDynamo()
    fake.transact_write_items = lambda TransactItems: FakeDynamo._cancel([{"Code": "ValidationError"}])
    with pytest.raises(ClientError, match="canceled"):
        write_synced_items(fake, "t", view(True), [entry("a", 1)], check_online=False)
