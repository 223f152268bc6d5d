-- Demo data for the hotel integration (SQLite). Bollard runs this script once, when it
-- creates the database file on first use. The bookings are spread over November and
-- December 2026; statuses read as if "today" were 2026-11-20 (three arrivals, two
-- departures). Every statement is idempotent.

CREATE TABLE IF NOT EXISTS rooms (
    id             INTEGER PRIMARY KEY,
    number         TEXT    NOT NULL UNIQUE,
    floor          INTEGER NOT NULL,
    room_type      TEXT    NOT NULL CHECK (room_type IN ('single', 'double', 'twin', 'suite')),
    capacity       INTEGER NOT NULL CHECK (capacity > 0),
    base_rate      REAL    NOT NULL CHECK (base_rate >= 0),
    out_of_service INTEGER NOT NULL DEFAULT 0 CHECK (out_of_service IN (0, 1))
);

CREATE TABLE IF NOT EXISTS guests (
    id         INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name  TEXT NOT NULL,
    email      TEXT,
    phone      TEXT,
    country    TEXT
);

CREATE TABLE IF NOT EXISTS reservations (
    id            INTEGER PRIMARY KEY,
    guest_id      INTEGER NOT NULL REFERENCES guests (id),
    room_id       INTEGER NOT NULL REFERENCES rooms (id),
    check_in      TEXT    NOT NULL,
    check_out     TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'confirmed'
                  CHECK (status IN ('confirmed', 'checked_in', 'checked_out', 'cancelled')),
    adults        INTEGER NOT NULL DEFAULT 1 CHECK (adults > 0),
    children      INTEGER NOT NULL DEFAULT 0 CHECK (children >= 0),
    rate          REAL    NOT NULL CHECK (rate >= 0),
    source        TEXT,
    notes         TEXT,
    created_at    TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    cancelled_at  TEXT,
    cancel_reason TEXT,
    CHECK (check_out > check_in)
);

CREATE INDEX IF NOT EXISTS reservations_check_in ON reservations (check_in);
CREATE INDEX IF NOT EXISTS reservations_check_out ON reservations (check_out);
CREATE INDEX IF NOT EXISTS reservations_room ON reservations (room_id);
CREATE INDEX IF NOT EXISTS reservations_guest ON reservations (guest_id);

INSERT OR IGNORE INTO rooms (id, number, floor, room_type, capacity, base_rate, out_of_service) VALUES
    (1, '101', 1, 'single', 1, 89.0, 0),
    (2, '102', 1, 'double', 3, 119.0, 0),
    (3, '103', 1, 'double', 2, 119.0, 0),
    (4, '104', 1, 'twin', 2, 115.0, 0),
    (5, '201', 2, 'double', 2, 129.0, 0),
    (6, '202', 2, 'twin', 2, 125.0, 0),
    (7, '203', 2, 'suite', 4, 249.0, 0),
    (8, '301', 3, 'double', 3, 139.0, 0),
    (9, '302', 3, 'suite', 4, 279.0, 0),
    (10, '303', 3, 'single', 1, 95.0, 1);

INSERT OR IGNORE INTO guests (id, first_name, last_name, email, phone, country) VALUES
    (1, 'Anna', 'Müller', 'anna.mueller@example.com', '+41 79 555 01 23', 'CH'),
    (2, 'James', 'O''Brien', 'james.obrien@example.ie', '+353 87 555 0142', 'IE'),
    (3, 'Sofia', 'Rossi', 'sofia.rossi@example.it', '+39 347 555 0198', 'IT'),
    (4, 'Lukáš', 'Novák', 'lukas.novak@example.cz', '+420 601 555 014', 'CZ'),
    (5, 'Emma', 'Johansson', 'emma.johansson@example.se', '+46 70 555 01 77', 'SE'),
    (6, 'Mateo', 'García', 'mateo.garcia@example.es', '+34 612 555 019', 'ES'),
    (7, 'Chloé', 'Dubois', 'chloe.dubois@example.fr', '+33 6 55 50 12 34', 'FR'),
    (8, 'Hiroshi', 'Tanaka', 'hiroshi.tanaka@example.jp', '+81 90 5550 0123', 'JP'),
    (9, 'Olivia', 'Smith', 'olivia.smith@example.co.uk', '+44 7700 900123', 'GB'),
    (10, 'Noah', 'Williams', 'noah.williams@example.com', '+1 415 555 0132', 'US'),
    (11, 'Lea', 'Schneider', 'lea.schneider@example.de', '+49 151 5550 1234', 'DE'),
    (12, 'Amira', 'Haddad', 'amira.haddad@example.com', '+212 6 55 50 12 34', 'MA'),
    (13, 'Lars', 'Jensen', 'lars.jensen@example.dk', '+45 20 55 50 12', 'DK'),
    (14, 'Priya', 'Sharma', 'priya.sharma@example.in', '+91 98765 55012', 'IN'),
    (15, 'Tomás', 'Silva', 'tomas.silva@example.pt', '+351 912 555 012', 'PT');

INSERT OR IGNORE INTO reservations
    (id, guest_id, room_id, check_in, check_out, status, adults, children, rate, source, notes,
     created_at, cancelled_at, cancel_reason)
VALUES
    (1, 1, 1, '2026-11-02', '2026-11-05', 'checked_out', 1, 0, 89.0, 'direct', NULL, '2026-10-12 10:07:00', NULL, NULL),
    (2, 5, 1, '2026-11-16', '2026-11-21', 'checked_in', 1, 0, 85.0, 'booking.com', 'Late check-out requested', '2026-10-17 11:14:00', NULL, NULL),
    (3, 12, 1, '2026-12-03', '2026-12-06', 'confirmed', 1, 0, 89.0, 'direct', NULL, '2026-11-19 12:21:00', NULL, NULL),
    (4, 2, 2, '2026-11-06', '2026-11-09', 'checked_out', 2, 0, 119.0, 'expedia', NULL, '2026-09-27 13:28:00', NULL, NULL),
    (5, 7, 2, '2026-11-19', '2026-11-23', 'checked_in', 2, 1, 129.0, 'direct', 'Baby cot in the room', '2026-10-25 14:35:00', NULL, NULL),
    (6, 14, 9, '2026-12-20', '2026-12-27', 'confirmed', 2, 2, 299.0, 'direct', 'Christmas package', '2026-10-21 15:42:00', NULL, NULL),
    (7, 3, 3, '2026-11-10', '2026-11-14', 'checked_out', 2, 0, 115.0, 'booking.com', NULL, '2026-10-23 16:49:00', NULL, NULL),
    (8, 9, 3, '2026-11-20', '2026-11-22', 'confirmed', 2, 0, 119.0, 'direct', 'Arriving by train around 18:00', '2026-11-11 17:56:00', NULL, NULL),
    (9, 4, 3, '2026-11-28', '2026-11-30', 'cancelled', 2, 0, 119.0, 'booking.com', NULL, '2026-11-13 18:03:00', '2026-11-19 16:45:00', 'Flight cancelled'),
    (10, 15, 3, '2026-12-29', '2027-01-02', 'confirmed', 2, 0, 189.0, 'phone', 'New Year''s Eve dinner for two', '2026-11-14 09:10:00', NULL, NULL),
    (11, 6, 4, '2026-11-12', '2026-11-20', 'checked_in', 2, 0, 109.0, 'corporate', 'Invoice to Acme Logistics', '2026-10-23 10:17:00', NULL, NULL),
    (12, 11, 4, '2026-11-24', '2026-11-27', 'confirmed', 2, 0, 115.0, 'expedia', NULL, '2026-11-10 11:24:00', NULL, NULL),
    (13, 8, 5, '2026-11-01', '2026-11-04', 'checked_out', 2, 0, 129.0, 'direct', NULL, '2026-09-29 12:31:00', NULL, NULL),
    (14, 10, 5, '2026-11-18', '2026-11-20', 'checked_out', 2, 0, 129.0, 'booking.com', 'Left early, keys at the desk', '2026-11-08 13:38:00', NULL, NULL),
    (15, 13, 5, '2026-11-20', '2026-11-25', 'confirmed', 1, 0, 129.0, 'corporate', NULL, '2026-11-13 14:45:00', NULL, NULL),
    (16, 2, 5, '2026-12-10', '2026-12-12', 'confirmed', 2, 0, 135.0, 'direct', NULL, '2026-11-19 15:52:00', NULL, NULL),
    (17, 1, 6, '2026-11-07', '2026-11-08', 'checked_out', 2, 0, 125.0, 'direct', NULL, '2026-11-04 16:59:00', NULL, NULL),
    (18, 12, 6, '2026-11-17', '2026-11-19', 'cancelled', 2, 0, 125.0, 'booking.com', NULL, '2026-11-06 17:06:00', '2026-11-15 16:45:00', 'No-show'),
    (19, 3, 6, '2026-11-21', '2026-11-24', 'confirmed', 2, 0, 125.0, 'booking.com', NULL, '2026-11-05 18:13:00', NULL, NULL),
    (20, 6, 6, '2026-12-05', '2026-12-08', 'confirmed', 2, 0, 125.0, 'phone', NULL, '2026-11-16 09:20:00', NULL, NULL),
    (21, 14, 7, '2026-11-13', '2026-11-16', 'checked_out', 2, 1, 249.0, 'direct', NULL, '2026-09-24 10:27:00', NULL, NULL),
    (22, 15, 7, '2026-11-19', '2026-11-26', 'checked_in', 2, 0, 229.0, 'direct', 'Honeymoon: champagne on arrival', '2026-09-10 11:34:00', NULL, NULL),
    (23, 8, 7, '2026-12-23', '2026-12-28', 'confirmed', 2, 2, 299.0, 'expedia', NULL, '2026-10-29 12:41:00', NULL, NULL),
    (24, 4, 8, '2026-11-05', '2026-11-07', 'checked_out', 2, 0, 139.0, 'expedia', NULL, '2026-10-27 13:48:00', NULL, NULL),
    (25, 11, 8, '2026-11-15', '2026-11-22', 'checked_in', 1, 0, 125.0, 'corporate', 'Conference guest, needs a quiet room', '2026-10-18 14:55:00', NULL, NULL),
    (26, 7, 8, '2026-12-01', '2026-12-04', 'confirmed', 2, 0, 139.0, 'direct', NULL, '2026-11-09 15:02:00', NULL, NULL),
    (27, 9, 8, '2026-12-14', '2026-12-18', 'cancelled', 2, 1, 139.0, 'booking.com', NULL, '2026-11-14 16:09:00', '2026-11-19 16:45:00', 'Changed travel dates'),
    (28, 5, 9, '2026-11-20', '2026-11-23', 'confirmed', 2, 0, 279.0, 'direct', 'Anniversary: flowers in the suite', '2026-10-16 17:16:00', NULL, NULL),
    (29, 10, 9, '2026-12-30', '2027-01-02', 'confirmed', 3, 1, 329.0, 'direct', NULL, '2026-10-11 18:23:00', NULL, NULL),
    (30, 13, 9, '2026-11-08', '2026-11-12', 'checked_out', 2, 0, 279.0, 'phone', NULL, '2026-10-12 09:30:00', NULL, NULL),
    (31, 2, 10, '2026-11-03', '2026-11-06', 'checked_out', 1, 0, 95.0, 'direct', NULL, '2026-10-26 10:37:00', NULL, NULL);
