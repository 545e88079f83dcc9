"""Seeded word lists for the synthetic catalogue: five WebShop categories, six product types
each. Every type names its search query, title noun, Amazon-style category path, a pool of
attributes (each appears in titles or bullet points, so the reward's text fallback works as
in the real data), option groups and a price range. Brands are invented and private to one
type, so a wrong-type purchase never shares a brand noun with the goal's title."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProductType:
    category: str
    query: str
    noun: str  # title-case noun phrase used in titles
    article: str  # "a", "an" or "" (plural types), used in instructions
    product_category: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]  # (group name, value pool), fixed order
    price: tuple[float, float]


COLORS = ("black", "white", "navy blue", "gray", "red", "green", "pink", "beige")
CLOTH_SIZES = ("small", "medium", "large", "x-large")
SHOE_SIZES = ("7", "8", "9", "10", "11")

_B = "Beauty & Personal Care"
_G = "Grocery & Gourmet Food"
_F = "Clothing, Shoes & Jewelry"
_H = "Home & Kitchen"
_E = "Electronics"

PRODUCT_TYPES: tuple[ProductType, ...] = (
    # beauty
    ProductType("beauty", "face moisturizer", "Face Moisturizer", "a",
                f"{_B} › Skin Care › Face › Creams & Moisturizers",
                ("hydrating", "fragrance free", "oil free", "anti aging", "hyaluronic acid", "sensitive skin"),
                (("size", ("1.7 oz", "3.4 oz", "5 oz")),), (8.0, 40.0)),
    ProductType("beauty", "shampoo", "Shampoo", "a",
                f"{_B} › Hair Care › Shampoo & Conditioner › Shampoos",
                ("sulfate free", "argan oil", "color safe", "tea tree", "volumizing", "paraben free"),
                (("size", ("8 fl oz", "12 fl oz", "16 fl oz")), ("scent", ("coconut", "citrus", "eucalyptus"))),
                (6.0, 30.0)),
    ProductType("beauty", "lipstick", "Lipstick", "a",
                f"{_B} › Makeup › Lips › Lipstick",
                ("long lasting", "matte finish", "cruelty free", "vegan", "moisturizing", "smudge proof"),
                (("color", ("red", "pink", "coral", "nude", "berry")),), (5.0, 25.0)),
    ProductType("beauty", "nail polish", "Nail Polish", "",
                f"{_B} › Foot, Hand & Nail Care › Nail Art & Polish › Nail Polish",
                ("quick dry", "non toxic", "gel effect", "glitter", "chip resistant", "high shine"),
                (("color", ("red", "pink", "white", "black", "green")),), (4.0, 18.0)),
    ProductType("beauty", "body wash", "Body Wash", "a",
                f"{_B} › Personal Care › Bath & Bathing Accessories › Body Washes",
                ("shea butter", "natural ingredients", "sensitive skin", "exfoliating", "paraben free", "moisturizing"),
                (("size", ("16 fl oz", "32 fl oz")), ("scent", ("lavender", "coconut", "unscented"))),
                (5.0, 22.0)),
    ProductType("beauty", "makeup brush set", "Makeup Brush Set", "a",
                f"{_B} › Tools & Accessories › Makeup Brushes & Tools › Brush Sets",
                ("synthetic bristles", "travel case", "cruelty free", "easy clean", "dense bristles", "wooden handle"),
                (("color", ("black", "pink", "beige")),), (9.0, 35.0)),
    # grocery
    ProductType("grocery", "protein bars", "Protein Bars", "",
                f"{_G} › Snack Foods › Bars › Protein Bars",
                ("gluten free", "low sugar", "high protein", "keto friendly", "plant based", "non gmo"),
                (("flavor", ("chocolate", "peanut butter", "vanilla almond")), ("size", ("12 count", "24 count"))),
                (12.0, 45.0)),
    ProductType("grocery", "whole bean coffee", "Whole Bean Coffee", "",
                f"{_G} › Beverages › Coffee, Tea & Cocoa › Coffee › Whole Coffee Beans",
                ("dark roast", "medium roast", "organic", "fair trade", "single origin", "decaf"),
                (("size", ("12 oz", "2 lb")),), (9.0, 35.0)),
    ProductType("grocery", "green tea", "Green Tea Bags", "",
                f"{_G} › Beverages › Coffee, Tea & Cocoa › Tea › Green",
                ("organic", "individually wrapped", "non gmo", "matcha blend", "caffeine rich", "antioxidant"),
                (("flavor", ("jasmine", "mint", "lemon")), ("size", ("20 count", "100 count"))), (4.0, 20.0)),
    ProductType("grocery", "trail mix", "Trail Mix", "",
                f"{_G} › Snack Foods › Nuts & Seeds › Trail Mix",
                ("gluten free", "no added sugar", "dry roasted", "lightly salted", "non gmo", "resealable bag"),
                (("size", ("1 lb", "3 lb")),), (6.0, 25.0)),
    ProductType("grocery", "olive oil", "Extra Virgin Olive Oil", "",
                f"{_G} › Pantry Staples › Cooking Oils › Olive Oil",
                ("cold pressed", "organic", "first harvest", "non gmo", "kosher", "glass bottle"),
                (("size", ("500 ml", "1 liter")),), (8.0, 32.0)),
    ProductType("grocery", "dark chocolate", "Dark Chocolate Bar", "a",
                f"{_G} › Snack Foods › Candy & Chocolate › Chocolate Bars",
                ("vegan", "sugar free", "fair trade", "organic", "gluten free", "keto friendly"),
                (("flavor", ("sea salt", "orange", "mint", "almond")),), (3.0, 15.0)),
    # fashion
    ProductType("fashion", "running shoes", "Running Shoes", "",
                f"{_F} › Men › Shoes › Athletic › Running",
                ("lightweight", "breathable mesh", "non slip", "arch support", "memory foam", "wide width"),
                (("size", SHOE_SIZES), ("color", ("black", "white", "navy blue", "gray"))), (30.0, 90.0)),
    ProductType("fashion", "t-shirt", "T-Shirt", "a",
                f"{_F} › Men › Clothing › Shirts › T-Shirts",
                ("cotton", "short sleeve", "crew neck", "slim fit", "moisture wicking", "machine wash"),
                (("size", CLOTH_SIZES), ("color", COLORS)), (8.0, 28.0)),
    ProductType("fashion", "hoodie", "Pullover Hoodie", "a",
                f"{_F} › Women › Clothing › Fashion Hoodies & Sweatshirts",
                ("fleece lined", "long sleeve", "drawstring", "kangaroo pocket", "relaxed fit", "machine wash"),
                (("size", CLOTH_SIZES), ("color", COLORS)), (18.0, 50.0)),
    ProductType("fashion", "yoga leggings", "Yoga Leggings", "",
                f"{_F} › Women › Clothing › Active › Leggings",
                ("high waist", "tummy control", "squat proof", "four way stretch", "side pocket", "moisture wicking"),
                (("size", CLOTH_SIZES), ("color", ("black", "gray", "navy blue", "green"))), (12.0, 40.0)),
    ProductType("fashion", "sunglasses", "Sunglasses", "",
                f"{_F} › Men › Accessories › Sunglasses & Eyewear Accessories › Sunglasses",
                ("polarized", "uv protection", "metal frame", "lightweight", "oversized", "unisex"),
                (("color", ("black", "gold", "silver", "brown")),), (10.0, 45.0)),
    ProductType("fashion", "laptop backpack", "Laptop Backpack", "a",
                f"{_F} › Luggage & Travel Gear › Backpacks › Laptop Backpacks",
                ("water resistant", "usb charging port", "anti theft", "padded compartment", "large capacity", "lightweight"),
                (("color", ("black", "gray", "navy blue", "green")),), (20.0, 60.0)),
    # furniture / home
    ProductType("furniture", "office chair", "Office Chair", "an",
                f"{_H} › Furniture › Home Office Furniture › Home Office Chairs",
                ("ergonomic", "lumbar support", "adjustable height", "mesh back", "swivel", "padded armrests"),
                (("color", ("black", "gray", "white", "blue")),), (60.0, 180.0)),
    ProductType("furniture", "coffee table", "Coffee Table", "a",
                f"{_H} › Furniture › Living Room Furniture › Tables › Coffee Tables",
                ("solid wood", "storage shelf", "easy assembly", "mid century", "rustic", "lift top"),
                (("color", ("walnut", "black", "white", "oak")),), (50.0, 160.0)),
    ProductType("furniture", "bookshelf", "Bookshelf", "a",
                f"{_H} › Furniture › Home Office Furniture › Bookcases",
                ("5 tier", "metal frame", "easy assembly", "industrial", "open shelf", "engineered wood"),
                (("color", ("walnut", "black", "white", "oak")),), (40.0, 130.0)),
    ProductType("furniture", "bed sheet set", "Bed Sheet Set", "a",
                f"{_H} › Bedding › Sheets & Pillowcases › Sheet & Pillowcase Sets",
                ("microfiber", "deep pocket", "wrinkle free", "egyptian cotton", "cooling", "hypoallergenic"),
                (("size", ("twin", "full", "queen", "king")), ("color", ("white", "gray", "beige", "navy blue"))),
                (20.0, 70.0)),
    ProductType("furniture", "throw pillow covers", "Throw Pillow Covers", "",
                f"{_H} › Home Décor Products › Decorative Pillows, Inserts & Covers › Throw Pillow Covers",
                ("velvet", "set of 2", "hidden zipper", "machine washable", "linen blend", "boho style"),
                (("size", ("18x18 inch", "20x20 inch")), ("color", ("green", "beige", "pink", "gray"))),
                (8.0, 26.0)),
    ProductType("furniture", "desk lamp", "Desk Lamp", "a",
                f"{_H} › Lighting & Ceiling Fans › Lamps & Shades › Desk Lamps",
                ("dimmable", "usb charging port", "eye caring", "touch control", "led light", "adjustable arm"),
                (("color", ("black", "white", "silver")),), (15.0, 45.0)),
    # electronics
    ProductType("electronics", "wireless earbuds", "Wireless Earbuds", "",
                f"{_E} › Headphones, Earbuds & Accessories › Headphones & Earbuds › Earbud Headphones",
                ("noise cancelling", "bluetooth 5.3", "waterproof", "long battery life", "charging case", "built in microphone"),
                (("color", ("black", "white", "blue")),), (15.0, 80.0)),
    ProductType("electronics", "phone case", "Phone Case", "a",
                f"{_E} › Cell Phones & Accessories › Cases, Holsters & Sleeves › Basic Cases",
                ("shockproof", "slim", "clear back", "magnetic", "card holder", "kickstand"),
                (("color", ("black", "clear", "pink", "blue")), ("style", ("iphone 14", "iphone 15", "galaxy s23"))),
                (7.0, 25.0)),
    ProductType("electronics", "portable charger", "Portable Charger", "a",
                f"{_E} › Cell Phones & Accessories › Chargers & Power Adapters › Portable Power Banks",
                ("fast charging", "10000mah", "usb c", "compact", "led display", "dual output"),
                (("color", ("black", "white", "blue")),), (12.0, 45.0)),
    ProductType("electronics", "hdmi cable", "HDMI Cable", "an",
                f"{_E} › Television & Video › Accessories › Cables › HDMI Cables",
                ("4k", "high speed", "braided", "gold plated", "8k", "ethernet"),
                (("size", ("3 ft", "6 ft", "10 ft")),), (5.0, 20.0)),
    ProductType("electronics", "bluetooth speaker", "Bluetooth Speaker", "a",
                f"{_E} › Portable Audio & Video › Portable Speakers & Docks › Portable Bluetooth Speakers",
                ("waterproof", "portable", "bass boost", "20 hour playtime", "stereo pairing", "built in microphone"),
                (("color", ("black", "blue", "red", "gray")),), (20.0, 90.0)),
    ProductType("electronics", "wireless mouse", "Wireless Mouse", "a",
                f"{_E} › Computers & Accessories › Computer Accessories & Peripherals › Keyboards, Mice & Accessories › Mice",
                ("ergonomic", "silent click", "rechargeable", "usb receiver", "adjustable dpi", "bluetooth"),
                (("color", ("black", "white", "gray", "pink")),), (8.0, 35.0)),
)

# Invented brand names; PRODUCT_TYPES[i] uses BRANDS[2i] and BRANDS[2i + 1].
BRANDS: tuple[str, ...] = (
    "Lumina", "Velora", "Purelle", "Aurisa", "Nuvique", "Belisse", "Corallo", "Glossa",
    "Sorelle", "Avenna", "Blendia", "Silkora", "Grainvale", "Nutrabay", "Roastwell", "Beanora",
    "Teavana Hill", "Leafmere", "Trekbite", "Nutwell", "Olivara", "Goldpress", "Cacaova", "Noirel",
    "Stridex", "Runvale", "Cottona", "Basicore", "Cozyline", "Hoodwell", "Flexora", "Zenfit",
    "Sunvex", "Glarefree", "Packwell", "Trailform", "Seatline", "Posturo", "Oakhaven", "Tablewood",
    "Shelfwise", "Nordwood", "Dreamweave", "Linenly", "Cushia", "Velvetta", "Brightdesk", "Lumalamp",
    "Sonara", "Auralink", "Guardcase", "Shellix", "Voltix", "Chargewell", "Cablix", "Linkstream",
    "Boomvale", "Soundrift", "Clickwell", "Pointera",
)

INSTRUCTION_TEMPLATES: tuple[str, ...] = (
    "i need {art}{a1} and {a2} {query}",
    "i am looking for {art}{query} that is {a1} and {a2}",
    "i want to buy {art}{query} with {a1} and {a2}",
    "find me {art}{a1} {query} that is {a2}",
)

FEATURE_TEMPLATES: tuple[str, ...] = (
    "{A}: made to last with careful quality checks",
    "{A}: designed for everyday use",
    "{A}: tested for comfort and performance",
)

DESCRIPTION_TEMPLATES: tuple[str, ...] = (
    "The {brand} {noun} is {a1} and {a2}. A reliable choice at a fair price.",
    "Meet the {brand} {noun}: {a1}, {a2} and built for daily use.",
    "{brand} made this {noun} {a1} and {a2}, with {a3} as a bonus.",
)
