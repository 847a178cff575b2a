-- Iris example: a model server posts inference logs to the HTTP ingest
-- (POST http://127.0.0.1:8080/ingest/iris); three monitors watch them.
-- `driftwatch demo` runs this file with generated traffic that drifts on the petal features.

CREATE SOURCE iris (
    request_id   VARCHAR,
    ts           TIMESTAMP,
    sepal_length DOUBLE,
    sepal_width  DOUBLE,
    petal_length DOUBLE,
    petal_width  DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '2 seconds'
) WITH (connector = 'http', format = 'inference-log', idle_timeout = '5 seconds');

-- The training set, profiled once and kept in the data dir (a relative path is read from
-- this file's directory).
CREATE BASELINE iris_train FROM 'train.csv';

-- Windowed statistics of every input.
CREATE MONITOR iris_stats AS
SELECT window_start, window_end, count(*) AS n,
       avg(sepal_length) AS sepal_length_avg, stddev(sepal_length) AS sepal_length_std,
       avg(petal_length) AS petal_length_avg, stddev(petal_length) AS petal_length_std,
       min(petal_width) AS petal_width_min, max(petal_width) AS petal_width_max
FROM TUMBLE(iris, ts, INTERVAL '10 seconds')
GROUP BY window_start, window_end;

-- Drift of every feature against the training set, over the long (feature, value) view:
-- one monitor covers all numeric columns.
CREATE MONITOR iris_drift AS
SELECT window_start, window_end, feature, count(*) AS n,
       wasserstein_norm(value, 'iris_train', feature) AS w_norm,
       ks_pvalue(value, 'iris_train', feature) AS ks_p,
       wasserstein_norm(value, 'iris_train', feature) > 0.3 AS drift,
       histogram(value, 'iris_train', feature) AS hist
FROM HOP(features(iris), ts, INTERVAL '5 seconds', INTERVAL '10 seconds')
GROUP BY window_start, window_end, feature;

-- Per-request outliers, at once: no window.
CREATE MONITOR iris_outliers AS
SELECT request_id, ts,
       zscore(petal_length, 'iris_train') AS petal_length_z,
       mahalanobis(sepal_length, sepal_width, petal_length, petal_width, 'iris_train') AS distance
FROM iris
WHERE abs(zscore(petal_length, 'iris_train')) > 3;
