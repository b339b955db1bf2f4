use geo::{coord, Rect};

/// A bounding box in CRS84 (longitude, latitude), as `bbox=minLon,minLat,maxLon,maxLat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bbox {
    pub min_x: f64,
    pub min_y: f64,
    pub max_x: f64,
    pub max_y: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BboxError {
    #[error("bbox must have 4 numbers (minLon,minLat,maxLon,maxLat) or 6 with heights; got {0}")]
    Count(usize),
    #[error("bbox value '{0}' is not a number")]
    NotANumber(String),
    #[error("bbox minimum {axis} {min} is greater than maximum {max}")]
    Inverted {
        axis: &'static str,
        min: f64,
        max: f64,
    },
    #[error("bbox latitude {0} is outside -90..90")]
    Latitude(f64),
    #[error("bbox longitude {0} is outside -180..180")]
    Longitude(f64),
}

impl Bbox {
    /// Parses the OGC API `bbox` parameter: 4 numbers, or 6 (minLon,minLat,minH,maxLon,maxLat,maxH,
    /// heights ignored since the data is 2D).
    ///
    /// ```
    /// use yizhangtu::geom::Bbox;
    /// let b = Bbox::parse("105.5,29.3,106,29.8").unwrap();
    /// assert_eq!(b.max_x, 106.0);
    /// assert!(Bbox::parse("106,29,105,30").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Bbox, BboxError> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let numbers = parts
            .iter()
            .map(|p| {
                p.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| BboxError::NotANumber(p.to_string()))
            })
            .collect::<Result<Vec<f64>, _>>();
        let v = match (parts.len(), numbers) {
            (4 | 6, Ok(v)) => v,
            (4 | 6, Err(e)) => return Err(e),
            (n, _) => return Err(BboxError::Count(n)),
        };
        let (min_x, min_y, max_x, max_y) = if v.len() == 4 {
            (v[0], v[1], v[2], v[3])
        } else {
            (v[0], v[1], v[3], v[4])
        };
        for lat in [min_y, max_y] {
            if !(-90.0..=90.0).contains(&lat) {
                return Err(BboxError::Latitude(lat));
            }
        }
        for lon in [min_x, max_x] {
            if !(-180.0..=180.0).contains(&lon) {
                return Err(BboxError::Longitude(lon));
            }
        }
        if min_x > max_x {
            return Err(BboxError::Inverted {
                axis: "longitude",
                min: min_x,
                max: max_x,
            });
        }
        if min_y > max_y {
            return Err(BboxError::Inverted {
                axis: "latitude",
                min: min_y,
                max: max_y,
            });
        }
        Ok(Bbox {
            min_x,
            min_y,
            max_x,
            max_y,
        })
    }

    pub fn to_rect(self) -> Rect<f64> {
        Rect::new(
            coord! { x: self.min_x, y: self.min_y },
            coord! { x: self.max_x, y: self.max_y },
        )
    }
}

/// `r` grown by `d` on every side (degrees for lon/lat boxes).
pub fn padded(r: Rect<f64>, d: f64) -> Rect<f64> {
    Rect::new(
        geo::coord! {x: r.min().x - d, y: r.min().y - d},
        geo::coord! {x: r.max().x + d, y: r.max().y + d},
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            Bbox::parse("1,2,3,4").unwrap(),
            Bbox {
                min_x: 1.,
                min_y: 2.,
                max_x: 3.,
                max_y: 4.
            }
        );
        assert_eq!(Bbox::parse("1,2,0,3,4,10").unwrap().max_y, 4.0);
        assert_eq!(Bbox::parse("1,2,3"), Err(BboxError::Count(3)));
        assert_eq!(
            Bbox::parse("1,2,3,x"),
            Err(BboxError::NotANumber("x".into()))
        );
        assert_eq!(
            Bbox::parse("1,2,3,NaN"),
            Err(BboxError::NotANumber("NaN".into()))
        );
        assert_eq!(Bbox::parse("1,-91,3,4"), Err(BboxError::Latitude(-91.)));
        assert!(matches!(
            Bbox::parse("1,5,3,4"),
            Err(BboxError::Inverted { .. })
        ));
        assert!(matches!(
            Bbox::parse("4,1,3,4"),
            Err(BboxError::Inverted { .. })
        ));
        assert_eq!(Bbox::parse("1,2,181,4"), Err(BboxError::Longitude(181.)));
    }
}
