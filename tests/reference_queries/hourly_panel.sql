-- One row per UTC hour for one instrument: `panel` at interval 1h (every column and rule of
-- queries/panel.sql). Row ts is the hour's open; slower series are known at the hour's close.
-- const interval: 1h
SELECT * FROM {{ panel }}
