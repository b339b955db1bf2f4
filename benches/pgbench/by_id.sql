\set id random(1, :n)
SELECT ST_AsGeoJSON(t.*)::text FROM parcels t WHERE ogc_fid = :id;
