-- The rule backtest (issue 19) replays a period's pre-fulfillment assessments with each
-- order's fate. Two partial indexes keep that to a few probes per order however long the
-- history: the period's assessments of that one stage by time (the other stages' rows, as
-- many again, are never read), and whether an agent rejected the order as fraud (its
-- `block_listed` event, without reading every event of the order).
CREATE INDEX risk_assessments_pre_fulfillment ON risk_assessments (created_at) WHERE stage = 'pre_fulfillment';
CREATE INDEX order_events_block_listed ON order_events (order_id) WHERE kind = 'block_listed';
