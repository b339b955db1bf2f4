\set id random(1, 200000)
SELECT ST_AsGeoJSON(t.*)::text FROM parcels t WHERE ogc_fid = :id;
