-- kpictl compile --engine spark
-- as_of 2026-10-10T00:00:00+00:00; params and as_of are literals below
-- source_business_events: the rows of source 'business_events' as kpictl reads them (sample_logs/business_events/business_events.jsonl), with __kpictl_row their position
-- source_events: the rows of source 'events' as kpictl reads them (sample_logs/events/events.jsonl), with __kpictl_row their position
-- source_tool_calls: the rows of source 'tool_calls' as kpictl reads them (sample_logs/tool_calls/tool_calls.jsonl), with __kpictl_row their position

-- facts_conversations: one row per conversation_id
WITH `rows_events` AS (SELECT * FROM `source_events` WHERE ts IS NULL OR ts <= CAST('2026-10-10T00:00:00+00:00' AS TIMESTAMP)),
  `rows_tool_calls` AS (SELECT * FROM `source_tool_calls` WHERE ts IS NULL OR ts <= CAST('2026-10-10T00:00:00+00:00' AS TIMESTAMP)),
  `rows_business_events` AS (SELECT * FROM `source_business_events` WHERE ts IS NULL OR ts <= CAST('2026-10-10T00:00:00+00:00' AS TIMESTAMP)),
  keys AS (SELECT `conversation_id`, MIN(`channel`) AS `channel`, MIN(`intent`) AS `intent`, MIN(`customer_tier`) AS `customer_tier`, MIN(`region`) AS `region`, MIN(`agent_version`) AS `agent_version`, MIN(`arm`) AS `arm`, MIN(`user_id`) AS `user_id`, MIN(`channel`) IS DISTINCT FROM MAX(`channel`) AS `__kpictl_varies_channel`, MIN(`intent`) IS DISTINCT FROM MAX(`intent`) AS `__kpictl_varies_intent`, MIN(`customer_tier`) IS DISTINCT FROM MAX(`customer_tier`) AS `__kpictl_varies_customer_tier`, MIN(`region`) IS DISTINCT FROM MAX(`region`) AS `__kpictl_varies_region`, MIN(`agent_version`) IS DISTINCT FROM MAX(`agent_version`) AS `__kpictl_varies_agent_version`, MIN(`arm`) IS DISTINCT FROM MAX(`arm`) AS `__kpictl_varies_arm`, MIN(`user_id`) IS DISTINCT FROM MAX(`user_id`) AS `__kpictl_varies_user_id` FROM `rows_events` GROUP BY `conversation_id`),
  pass_1 AS (SELECT `conversation_id`, MIN(ts) AS `started_at`, MIN(ts) FILTER(WHERE event = 'resolution') AS `resolved_at`, COUNT(*) FILTER(WHERE event = 'escalation') > 0 AS `escalated`, MIN_BY(escalation_reason, STRUCT(ts IS NULL AS n, ts AS t, __kpictl_row AS r)) FILTER(WHERE event = 'escalation') AS `escalation_reason`, COUNT(*) FILTER(WHERE policy_violation) > 0 AS `violation`, AVG(csat) FILTER(WHERE event = 'feedback') AS `csat`, CAST(COALESCE(SUM(input_tokens), 0) AS DOUBLE) + CAST(COALESCE(SUM(output_tokens), 0) AS DOUBLE) AS `tokens`, CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE) AS `llm_cost`, CAST(COALESCE(SUM(human_minutes), 0) AS DOUBLE) AS `human_minutes` FROM `rows_events` GROUP BY `conversation_id`),
  facts_1 AS (SELECT c.*, COALESCE(p.`started_at`, (SELECT MIN(ts) FROM `rows_events` WHERE FALSE)) AS `started_at`, COALESCE(p.`resolved_at`, (SELECT MIN(ts) FILTER(WHERE event = 'resolution') FROM `rows_events` WHERE FALSE)) AS `resolved_at`, COALESCE(p.`escalated`, (SELECT COUNT(*) FILTER(WHERE event = 'escalation') > 0 FROM `rows_events` WHERE FALSE)) AS `escalated`, COALESCE(p.`escalation_reason`, (SELECT MIN_BY(escalation_reason, STRUCT(ts IS NULL AS n, ts AS t, __kpictl_row AS r)) FILTER(WHERE event = 'escalation') FROM `rows_events` WHERE FALSE)) AS `escalation_reason`, COALESCE(p.`violation`, (SELECT COUNT(*) FILTER(WHERE policy_violation) > 0 FROM `rows_events` WHERE FALSE)) AS `violation`, COALESCE(p.`csat`, (SELECT AVG(csat) FILTER(WHERE event = 'feedback') FROM `rows_events` WHERE FALSE)) AS `csat`, COALESCE(p.`tokens`, (SELECT CAST(COALESCE(SUM(input_tokens), 0) AS DOUBLE) + CAST(COALESCE(SUM(output_tokens), 0) AS DOUBLE) FROM `rows_events` WHERE FALSE)) AS `tokens`, COALESCE(p.`llm_cost`, (SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE) FROM `rows_events` WHERE FALSE)) AS `llm_cost`, COALESCE(p.`human_minutes`, (SELECT CAST(COALESCE(SUM(human_minutes), 0) AS DOUBLE) FROM `rows_events` WHERE FALSE)) AS `human_minutes` FROM keys AS c LEFT JOIN pass_1 AS p USING (`conversation_id`)),
  pass_2 AS (SELECT `conversation_id`, COUNT(*) FILTER(WHERE event = 'reopen' AND ts > resolved_at AND ts <= resolved_at + INTERVAL '24' HOURS) > 0 AS `reopened_24h` FROM (SELECT r.*, k.`resolved_at` FROM `rows_events` AS r JOIN facts_1 AS k USING (`conversation_id`)) AS scoped GROUP BY `conversation_id`),
  facts_2 AS (SELECT c.*, COALESCE(p.`reopened_24h`, (SELECT COUNT(*) FILTER(WHERE event = 'reopen' AND ts > resolved_at AND ts <= resolved_at + INTERVAL '24' HOURS) > 0 FROM (SELECT r.*, k.`resolved_at` FROM `rows_events` AS r JOIN facts_1 AS k USING (`conversation_id`)) AS scoped WHERE FALSE)) AS `reopened_24h` FROM facts_1 AS c LEFT JOIN pass_2 AS p USING (`conversation_id`)),
  pass_3 AS (SELECT `conversation_id`, COUNT(*) AS `tool_calls`, CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE) AS `tool_cost` FROM `rows_tool_calls` GROUP BY `conversation_id`),
  facts_3 AS (SELECT c.*, COALESCE(p.`tool_calls`, (SELECT COUNT(*) FROM `rows_tool_calls` WHERE FALSE)) AS `tool_calls`, COALESCE(p.`tool_cost`, (SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE) FROM `rows_tool_calls` WHERE FALSE)) AS `tool_cost` FROM facts_2 AS c LEFT JOIN pass_3 AS p USING (`conversation_id`)),
  pass_4 AS (SELECT `conversation_id`, COUNT(*) FILTER(WHERE type = 'booking') AS `outcomes`, CAST(COALESCE(SUM(value_usd), 0) AS DOUBLE) AS `outcome_value` FROM `rows_business_events` GROUP BY `conversation_id`),
  facts_4 AS (SELECT c.*, COALESCE(p.`outcomes`, (SELECT COUNT(*) FILTER(WHERE type = 'booking') FROM `rows_business_events` WHERE FALSE)) AS `outcomes`, COALESCE(p.`outcome_value`, (SELECT CAST(COALESCE(SUM(value_usd), 0) AS DOUBLE) FROM `rows_business_events` WHERE FALSE)) AS `outcome_value` FROM facts_3 AS c LEFT JOIN pass_4 AS p USING (`conversation_id`)),
  rolled AS (SELECT `conversation_id`, `started_at`, `resolved_at`, `reopened_24h`, `escalated`, `escalation_reason`, `violation`, `csat`, `tokens`, `llm_cost`, `human_minutes`, `tool_calls`, `tool_cost`, `outcomes`, `outcome_value`, `channel`, `intent`, `customer_tier`, `region`, `agent_version`, `arm`, `user_id`, `__kpictl_varies_channel`, `__kpictl_varies_intent`, `__kpictl_varies_customer_tier`, `__kpictl_varies_region`, `__kpictl_varies_agent_version`, `__kpictl_varies_arm`, `__kpictl_varies_user_id` FROM facts_4),
  derive_1 AS (SELECT *, NOT resolved_at IS NULL AND NOT reopened_24h AS `completed` FROM rolled),
  derive_2 AS (SELECT *, COALESCE(resolved_at, started_at) <= CAST('2026-10-10T00:00:00+00:00' AS TIMESTAMP) - INTERVAL '24' HOURS AS `settled` FROM derive_1),
  derive_3 AS (SELECT *, (UNIX_MICROS(resolved_at) / 1e6) - (UNIX_MICROS(started_at) / 1e6) AS `ttr_s` FROM derive_2),
  derive_4 AS (SELECT *, llm_cost + tool_cost + human_minutes * 0.75 AS `cost_usd` FROM derive_3),
  derive_5 AS (SELECT *, NOT escalated AND human_minutes = 0 AS `contained` FROM derive_4),
  derive_6 AS (SELECT *, contained AND completed AND (csat IS NULL OR csat >= 4) AS `contained_well` FROM derive_5),
  derive_7 AS (SELECT *, started_at <= CAST('2026-10-10T00:00:00+00:00' AS TIMESTAMP) - INTERVAL '7' DAYS AS `outcome_settled` FROM derive_6),
  derive_8 AS (SELECT *, LEAD(started_at) OVER (PARTITION BY user_id, intent ORDER BY started_at NULLS LAST, `conversation_id` NULLS LAST) AS `next_start` FROM derive_7),
  derive_9 AS (SELECT *, MAX(next_start) OVER (PARTITION BY user_id, intent, started_at) AS `next_contact_at` FROM derive_8),
  derive_10 AS (SELECT *, COALESCE(NOT intent IS NULL AND next_contact_at > started_at AND next_contact_at <= started_at + INTERVAL '7' DAYS, FALSE) AS `repeat_7d` FROM derive_9)
SELECT * FROM derive_10;

-- KPI task_completion_rate
SELECT 'task_completion_rate' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN (COUNT(*) FILTER(WHERE __mature)) <> 0 THEN CAST(COUNT(*) FILTER(WHERE (completed) AND __mature) AS DOUBLE) / (COUNT(*) FILTER(WHERE __mature)) END AS value FROM (SELECT *, COALESCE((settled), FALSE) AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI containment_rate
SELECT 'containment_rate' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN (COUNT(*) FILTER(WHERE __mature)) <> 0 THEN CAST(COUNT(*) FILTER(WHERE (contained) AND __mature) AS DOUBLE) / (COUNT(*) FILTER(WHERE __mature)) END AS value FROM (SELECT *, COALESCE((settled), FALSE) AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI containment_with_quality
SELECT 'containment_with_quality' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN (COUNT(*) FILTER(WHERE __mature)) <> 0 THEN CAST(COUNT(*) FILTER(WHERE (contained_well) AND __mature) AS DOUBLE) / (COUNT(*) FILTER(WHERE __mature)) END AS value FROM (SELECT *, COALESCE((settled), FALSE) AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI time_to_resolution_p50
SELECT 'time_to_resolution_p50' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN COUNT(*) FILTER(WHERE __mature) > 0 THEN CAST(PERCENTILE(CAST(ttr_s AS DOUBLE), 0.5) FILTER(WHERE __mature) AS DOUBLE) END AS value FROM (SELECT *, TRUE AS __mature FROM `facts_conversations` WHERE (NOT resolved_at IS NULL)) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI time_to_resolution_p95
SELECT 'time_to_resolution_p95' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN COUNT(*) FILTER(WHERE __mature) > 0 THEN CAST(PERCENTILE(CAST(ttr_s AS DOUBLE), 0.95) FILTER(WHERE __mature) AS DOUBLE) END AS value FROM (SELECT *, TRUE AS __mature FROM `facts_conversations` WHERE (NOT resolved_at IS NULL)) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI business_outcome_rate
SELECT 'business_outcome_rate' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN (COUNT(*) FILTER(WHERE __mature)) <> 0 THEN CAST(COUNT(*) FILTER(WHERE (outcomes > 0) AND __mature) AS DOUBLE) / (COUNT(*) FILTER(WHERE __mature)) END AS value FROM (SELECT *, COALESCE((outcome_settled), FALSE) AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI value_per_conversation
SELECT 'value_per_conversation' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN COUNT(*) FILTER(WHERE __mature) > 0 THEN CAST(AVG(outcome_value) FILTER(WHERE __mature) AS DOUBLE) END AS value FROM (SELECT *, COALESCE((outcome_settled), FALSE) AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI csat_mean
SELECT 'csat_mean' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN COUNT(*) FILTER(WHERE __mature) > 0 THEN CAST(AVG(csat) FILTER(WHERE __mature) AS DOUBLE) END AS value FROM (SELECT *, TRUE AS __mature FROM `facts_conversations` WHERE (NOT csat IS NULL)) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI repeat_contact_rate_7d
SELECT 'repeat_contact_rate_7d' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN (COUNT(*) FILTER(WHERE __mature)) <> 0 THEN CAST(COUNT(*) FILTER(WHERE (repeat_7d) AND __mature) AS DOUBLE) / (COUNT(*) FILTER(WHERE __mature)) END AS value FROM (SELECT *, COALESCE((started_at <= CAST('2026-10-10T00:00:00+00:00' AS TIMESTAMP) - INTERVAL '7' DAYS), FALSE) AS __mature FROM `facts_conversations` WHERE (NOT user_id IS NULL)) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI cost_per_successful_task
SELECT 'cost_per_successful_task' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN (COUNT(*) FILTER(WHERE (completed) AND __mature)) <> 0 THEN CAST(SUM(cost_usd) FILTER(WHERE __mature) AS DOUBLE) / (COUNT(*) FILTER(WHERE (completed) AND __mature)) END AS value FROM (SELECT *, COALESCE((settled), FALSE) AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI cost_per_task
SELECT 'cost_per_task' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN COUNT(*) FILTER(WHERE __mature) > 0 THEN CAST(AVG(cost_usd) FILTER(WHERE __mature) AS DOUBLE) END AS value FROM (SELECT *, TRUE AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI tokens_per_task
SELECT 'tokens_per_task' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN COUNT(*) FILTER(WHERE __mature) > 0 THEN CAST(AVG(tokens) FILTER(WHERE __mature) AS DOUBLE) END AS value FROM (SELECT *, TRUE AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI tool_calls_per_task
SELECT 'tool_calls_per_task' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN COUNT(*) FILTER(WHERE __mature) > 0 THEN CAST(AVG(tool_calls) FILTER(WHERE __mature) AS DOUBLE) END AS value FROM (SELECT *, TRUE AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI human_minutes_per_task
SELECT 'human_minutes_per_task' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN COUNT(*) FILTER(WHERE __mature) > 0 THEN CAST(AVG(human_minutes) FILTER(WHERE __mature) AS DOUBLE) END AS value FROM (SELECT *, TRUE AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI cost_per_outcome
SELECT 'cost_per_outcome' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN (SUM(outcomes) FILTER(WHERE __mature)) <> 0 THEN CAST(SUM(cost_usd) FILTER(WHERE __mature) AS DOUBLE) / (SUM(outcomes) FILTER(WHERE __mature)) END AS value FROM (SELECT *, COALESCE((outcome_settled), FALSE) AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));

-- KPI policy_violation_rate
SELECT 'policy_violation_rate' AS kpi, CAST(`channel` AS STRING) AS `channel`, GROUPING(`channel`) AS `__g_channel`, COUNT(*) FILTER(WHERE __mature) AS n, COUNT(*) FILTER(WHERE NOT __mature) AS pending, CASE WHEN (COUNT(*) FILTER(WHERE __mature)) <> 0 THEN CAST(COUNT(*) FILTER(WHERE (violation) AND __mature) AS DOUBLE) / (COUNT(*) FILTER(WHERE __mature)) END AS value FROM (SELECT *, TRUE AS __mature FROM `facts_conversations`) AS scope GROUP BY GROUPING SETS ((), (`channel`));
