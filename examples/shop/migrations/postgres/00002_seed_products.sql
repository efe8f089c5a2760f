-- +goose Up
-- The catalogue a fresh shop opens with. Stock ranges from scarce to
-- plentiful so that "not enough stock" is easy to see.
INSERT INTO products (name, description, price, stock) VALUES
    ('Espresso cup', 'Thick porcelain, 80 ml.', 900, 120),
    ('Pour-over kettle', 'Gooseneck spout, 1 litre.', 4500, 40),
    ('Hand grinder', 'Conical steel burrs.', 7900, 25),
    ('Paper filters', 'Pack of 100.', 600, 500),
    ('Coffee beans', 'Washed Ethiopian, 250 g.', 1400, 300),
    ('Milk jug', 'Stainless, 350 ml.', 1800, 60),
    ('Tamper', '58 mm, walnut handle.', 3200, 15),
    ('Last-edition mug', 'Only three were made.', 2500, 3);

-- +goose Down
DELETE FROM products;
