from logbroker import Broker, Producer


def test_records_sent_by_a_producer_are_read_back_in_order(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("orders", 1)
    with Producer(tmp_path) as producer:
        for i in range(10):
            producer.send("orders", {"n": i})
    reader = broker.topic("orders").reader(0)
    records = reader.read(0, 100)
    assert [r.offset for r in records] == list(range(10))
    assert [r.value["n"] for r in records] == list(range(10))
