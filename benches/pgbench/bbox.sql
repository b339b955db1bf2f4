\set xi random(0, 38000)
\set yi random(0, 33000)
SELECT json_build_object('type','FeatureCollection','features', coalesce(json_agg(ST_AsGeoJSON(t.*)::json), '[]'))::text FROM (SELECT * FROM parcels WHERE ST_Intersects(geom, ST_MakeEnvelope(105.55 + :xi/100000.0, 29.45 + :yi/100000.0, 105.57 + :xi/100000.0, 29.47 + :yi/100000.0, 4326)) ORDER BY ogc_fid LIMIT 100) t;
