#!/usr/bin/env python3
"""gen_catalog.py - writes catalog.jsonl, the commerce world of trilemma-sim (docs/sim.md).

    python3 loadtest/sim/catalog/gen_catalog.py [--seed 20260101] [--out PATH]

One JSON object per line, each with a "kind": "product" (phones, laptops, headphones, shoes,
clothing: brand, title, price and MRP in INR, rating, review count, image path on the sim itself,
three key specs and category-specific specs), "policy" (returns, warranty, cancellation, ...)
and "order" (ids like "1234-5678"). Everything comes from one random.Random(seed) and is written
in a fixed order with fixed separators, so running it again gives the same bytes.
Standard library only.
"""

import argparse
import json
import os
import random

SEED = 20260101
COUNTS = {"phones": 1200, "laptops": 1000, "headphones": 1000, "shoes": 1000, "clothing": 1000}
COLOURS = ["Black", "White", "Blue", "Green", "Silver", "Grey", "Red", "Purple", "Gold", "Navy"]


def price_end(p):
    """A retail price: rounded, ending in 9 (₹18,999; ₹1,299; ₹499)."""
    step = 1000 if p >= 10000 else 100 if p >= 1000 else 10
    return max(step, int(round(p / step)) * step) - 1


# brand -> [(series, number range, price range in INR)]: prices follow the series, as in shops
PHONE_SERIES = {
    "Samsung": [("Galaxy M", (14, 56), (9000, 28000)), ("Galaxy A", (15, 56), (12000, 40000)),
                ("Galaxy F", (14, 55), (9000, 25000)), ("Galaxy S", (22, 25), (55000, 150000))],
    "Xiaomi": [("Redmi ", (12, 14), (7000, 15000)), ("Redmi Note ", (12, 14), (12000, 30000)),
               ("Xiaomi ", (13, 15), (30000, 80000))],
    "Apple": [("iPhone ", (13, 16), (45000, 160000))],
    "OnePlus": [("Nord CE ", (2, 4), (17000, 27000)), ("OnePlus ", (11, 13), (40000, 75000))],
    "Realme": [("Narzo ", (60, 70), (8000, 18000)), ("realme ", (11, 13), (12000, 30000)),
               ("realme GT ", (5, 7), (28000, 45000))],
    "Vivo": [("Y", (18, 300), (8000, 20000)), ("T", (2, 3), (15000, 25000)),
             ("V", (29, 40), (25000, 45000))],
    "Oppo": [("A", (18, 79), (8000, 20000)), ("F", (25, 27), (18000, 30000)),
             ("Reno ", (10, 12), (25000, 45000))],
    "Motorola": [("moto g", (34, 85), (8000, 22000)), ("Edge ", (40, 50), (20000, 40000))],
    "iQOO": [("Z", (7, 9), (12000, 25000)), ("Neo ", (7, 9), (25000, 38000))],
    "Poco": [("M", (6, 7), (7000, 14000)), ("X", (5, 6), (15000, 30000)),
             ("F", (5, 6), (22000, 35000))],
    "Google": [("Pixel ", (7, 9), (35000, 110000))],
    "Nothing": [("Phone (", (1, 3), (20000, 45000)), ("CMF Phone ", (1, 2), (13000, 18000))],
}


def phone(r, i):
    brand = r.choice(sorted(PHONE_SERIES))
    series, nums, (lo, hi) = r.choice(PHONE_SERIES[brand])
    model = series + str(r.randint(*nums)) + (")" if series.endswith("(") else "")
    if brand not in ("Apple", "Google", "Nothing"):
        model += r.choice(["", "", " 5G", " Pro", " Pro+ 5G", " Lite"])
    elif brand != "Nothing":
        model += r.choice(["", "", " Pro", " Pro Max" if brand == "Apple" else " Pro XL"])
    tier = r.random()
    price = price_end(lo + tier * (hi - lo))
    ram = [4, 6, 8, 8, 12, 16][min(5, int(tier * 4 + r.random() * 2))]
    storage = [64, 128, 128, 256, 256, 512][min(5, int(tier * 4 + r.random() * 2))]
    battery = r.choice([5000, 5000, 5500, 6000, 6000, 6500, 7000] if price < 30000 else
                       [4500, 5000, 5000, 5400, 5500])
    size = r.choice([6.1, 6.4, 6.5, 6.6, 6.67, 6.7, 6.78, 6.8])
    panel = r.choice(["IPS LCD", "IPS LCD", "AMOLED"] if price < 15000 else
                     ["AMOLED", "Super AMOLED", "pOLED", "LTPO OLED"])
    hz = r.choice([90, 120] if price < 15000 else [120, 120, 144])
    chip = r.choice(["Helio G99", "Dimensity 6100+", "Snapdragon 4 Gen 2", "Exynos 1280"]
                    if price < 15000 else ["Snapdragon 6 Gen 1", "Dimensity 7050",
                                           "Snapdragon 7s Gen 2", "Exynos 1380"]
                    if price < 30000 else ["Snapdragon 8 Gen 3", "Dimensity 8300",
                                           "Snapdragon 8s Gen 3", "Exynos 2400"])
    if brand == "Apple":
        battery, ram = r.choice([3279, 3349, 4383, 4685]), r.choice([6, 8])
        chip, panel, hz = r.choice(["A16 Bionic", "A17 Pro", "A18"]), "Super Retina XDR OLED", 120
        storage = r.choice([128, 256, 512])
    elif brand == "Google":
        chip, battery = r.choice(["Tensor G3", "Tensor G4"]), r.choice([4575, 4700, 5050])
    colour = r.choice(COLOURS)
    camera = r.choice([50, 50, 64, 108, 200] if price >= 15000 else [13, 48, 50, 50])
    specs = {"battery_mah": battery, "display": {"size_in": size, "type": panel, "refresh_hz": hz},
             "processor": chip, "ram_gb": ram, "storage_gb": storage, "rear_camera_mp": camera,
             "front_camera_mp": r.choice([8, 12, 16, 32]), "os": "iOS 18" if brand == "Apple" else
             "Android 14", "network": "5G" if "5G" in model or price > 12000 else "4G",
             "weight_g": r.randint(165, 230), "charging_w": r.choice([18, 25, 33, 45, 67, 80, 120])
             if brand != "Apple" else 20, "colour": colour}
    title = "%s %s (%s, %d GB RAM, %d GB Storage)" % (brand, model, colour, ram, storage)
    if brand == "Apple":
        title = "Apple %s (%d GB, %s)" % (model, storage, colour)
    keys = ["%d mAh" % battery, '%s" %s %d Hz' % (size, panel, hz), "%d GB / %d GB" % (ram, storage)]
    return brand, title, price, specs, keys, "phone"


def laptop(r, i):
    brands = {"HP": ["Pavilion ", "Victus ", "Envy x360 ", "15s-"], "Dell": ["Inspiron ", "Vostro ",
              "XPS ", "G15 "], "Lenovo": ["IdeaPad Slim ", "ThinkPad E", "Legion ", "LOQ "],
              "ASUS": ["Vivobook ", "Zenbook ", "TUF Gaming F", "ROG Strix G"], "Acer": [
              "Aspire ", "Nitro V ", "Swift Go "], "Apple": ["MacBook Air M", "MacBook Pro M"],
              "MSI": ["Modern ", "Thin GF", "Katana "], "Samsung": ["Galaxy Book"]}
    brand = r.choice(sorted(brands))
    series = r.choice(brands[brand])
    model = series + str(r.randint(1, 4) if brand == "Apple" else r.randint(3, 16))
    cpu = r.choice(["Apple M2", "Apple M3"] if brand == "Apple" else [
        "Intel Core i3-1315U", "Intel Core i5-1335U", "Intel Core i5-12450H", "Intel Core i7-13620H",
        "Intel Core Ultra 5 125H", "AMD Ryzen 5 7530U", "AMD Ryzen 7 7735HS", "AMD Ryzen 5 5500U"])
    ram = r.choice([8, 8, 16, 16, 32])
    ssd = r.choice([256, 512, 512, 1024])
    gpu = r.choice(["Integrated", "Integrated", "NVIDIA RTX 3050", "NVIDIA RTX 4050",
                    "NVIDIA RTX 4060", "AMD Radeon"]) if brand != "Apple" else "Apple GPU"
    size = r.choice([13.3, 14.0, 14.0, 15.6, 15.6, 16.0])
    tier = r.random()
    base = 26000 + tier ** 1.8 * 150000 + ram * 1200 + ssd * 15 + (25000 if "RTX" in gpu else 0)
    if brand == "Apple":
        base = max(base * 1.4, 79000)
    price = price_end(base)
    hours = r.choice([5, 6, 7, 8, 10, 12, 15, 18])
    panel = r.choice(["IPS", "OLED", "IPS 144 Hz", "Liquid Retina"])
    specs = {"processor": cpu, "ram_gb": ram, "storage_gb": ssd, "storage_type": "SSD",
             "display": {"size_in": size, "type": panel, "resolution": r.choice([
                 "1920x1080", "2560x1600", "2880x1800"])}, "graphics": gpu,
             "battery_hours": hours, "weight_kg": round(r.uniform(1.1, 2.6), 2),
             "os": "macOS" if brand == "Apple" else "Windows 11 Home",
             "colour": r.choice(["Silver", "Grey", "Black", "Blue"])}
    title = "%s %s %s Laptop (%s, %d GB RAM, %d GB SSD, %s)" % (
        brand, model, '%s"' % size, cpu, ram, ssd, gpu if gpu != "Integrated" else specs["os"])
    keys = [cpu, "%d GB / %d GB SSD" % (ram, ssd), '%s" %s' % (size, panel)]
    return brand, title, price, specs, keys, "laptop"


def headphone(r, i):
    brands = ["Sony", "boAt", "JBL", "Sennheiser", "Bose", "Apple", "Samsung", "OnePlus", "Noise",
              "Skullcandy", "Jabra", "Audio-Technica", "Realme", "Marshall"]
    brand = r.choice(brands)
    kind = r.choice(["Over-Ear", "Over-Ear", "On-Ear", "In-Ear TWS", "In-Ear TWS", "Neckband"])
    anc = r.random() < 0.5
    driver = r.choice([6, 10, 11, 12.4, 13, 30, 40, 40, 50])
    if kind.startswith("Over") or kind.startswith("On"):
        driver = r.choice([30, 40, 40, 50])
    else:
        driver = r.choice([6, 10, 11, 12.4, 13])
    hours = r.choice([6, 8, 10, 20, 30, 40, 50, 60, 80])
    base = 800 + r.random() ** 2.5 * 32000 + (3000 if anc else 0)
    if brand in ("Bose", "Apple", "Sennheiser", "Marshall", "Sony"):
        base = base * 1.8 + 3000
    price = price_end(base)
    names = {"Sony": ["WH-", "WF-", "ULT "], "boAt": ["Rockerz ", "Airdopes "], "JBL": ["Tune ",
             "Live "], "Sennheiser": ["Momentum ", "Accentum "], "Bose": ["QuietComfort ", "Ultra "],
             "Apple": ["AirPods "], "Samsung": ["Galaxy Buds"], "OnePlus": ["Buds ", "Bullets Z"],
             "Noise": ["Buds VS", "Airwave "], "Skullcandy": ["Crusher ", "Indy "], "Jabra": [
             "Elite "], "Audio-Technica": ["ATH-M"], "Realme": ["Buds Air "], "Marshall": [
             "Major ", "Monitor "]}
    name = r.choice(names[brand])
    model = "%s%d%s" % (name, r.randint(2, 99) if name[-1] != "-" else r.randint(100, 999),
                        " ANC" if anc else "")
    colour = r.choice(COLOURS)
    specs = {"type": kind, "driver_mm": driver, "anc": anc, "battery_hours": hours,
             "bluetooth": r.choice(["5.0", "5.2", "5.3", "5.4"]), "microphone": True,
             "water_resistance": r.choice(["None", "IPX4", "IPX5", "IP54"]),
             "weight_g": r.randint(4, 320), "colour": colour}
    title = "%s %s %s Bluetooth Headphones (%s)" % (brand, model, kind, colour)
    keys = ["%s mm drivers" % driver, "ANC" if anc else "No ANC", "%d h battery" % hours]
    return brand, title, price, specs, keys, kind.lower()


def shoe(r, i):
    brands = ["Nike", "Adidas", "Puma", "Reebok", "Asics", "Skechers", "New Balance", "Bata",
              "Woodland", "Red Tape", "Campus", "Sparx", "Decathlon Kalenji", "Liberty"]
    brand = r.choice(brands)
    kind = r.choice(["Running Shoes", "Sneakers", "Walking Shoes", "Training Shoes", "Formal Shoes",
                     "Hiking Boots", "Sandals", "Loafers"])
    gender = r.choice(["Men", "Women", "Unisex"])
    material = r.choice(["Mesh", "Knit", "Synthetic Leather", "Genuine Leather", "Suede", "Canvas"])
    sole = r.choice(["Rubber", "EVA", "TPU", "Phylon"])
    sizes = list(range(r.choice([3, 4, 5, 6]), r.choice([9, 10, 11, 12]) + 1))
    base = 500 + r.random() ** 2.2 * 14000
    if brand in ("Nike", "Adidas", "Asics", "New Balance"):
        base = base * 1.5 + 1500
    price = price_end(base)
    colour = r.choice(COLOURS)
    model = r.choice(["Air", "Ultra", "Gel", "Velocity", "Flex", "Street", "Trail", "Classic",
                      "Pro", "Swift", "Glide"]) + " " + str(r.randint(1, 30))
    specs = {"type": kind, "gender": gender, "sizes_uk": sizes, "material": material,
             "sole": sole, "closure": r.choice(["Lace-Up", "Slip-On", "Velcro", "Buckle"]),
             "weight_g": r.randint(180, 650), "colour": colour}
    title = "%s %s %s's %s (%s)" % (brand, model, gender if gender != "Unisex" else "Unisex",
                                   kind, colour)
    title = title.replace("Unisex's", "Unisex")
    keys = ["UK %d-%d" % (sizes[0], sizes[-1]), material, sole + " sole"]
    return brand, title, price, specs, keys, kind.lower()


def clothing(r, i):
    brands = ["Levi's", "Allen Solly", "Van Heusen", "Peter England", "H&M", "Zara", "Uniqlo",
              "Roadster", "HRX", "Biba", "FabIndia", "W", "Jack & Jones", "U.S. Polo Assn."]
    brand = r.choice(brands)
    kind = r.choice(["T-Shirt", "Shirt", "Jeans", "Kurta", "Jacket", "Dress", "Hoodie", "Trousers",
                     "Shorts", "Saree"])
    gender = "Women" if kind in ("Dress", "Saree") else r.choice(["Men", "Women"])
    material = r.choice(["100% Cotton", "Cotton Blend", "Linen", "Denim", "Polyester", "Rayon",
                         "Wool Blend", "Silk"])
    if kind == "Jeans":
        material = "Denim"
    fit = r.choice(["Slim Fit", "Regular Fit", "Relaxed Fit", "Oversized"])
    sizes = ["XS", "S", "M", "L", "XL", "XXL"][r.randint(0, 1):r.randint(4, 6)]
    if kind in ("Jeans", "Trousers"):
        sizes = [str(s) for s in range(28, 28 + 2 * r.randint(4, 7), 2)]
    if kind == "Saree":
        sizes = ["Free Size"]
    base = 300 + r.random() ** 2 * 6000
    if brand in ("Zara", "Levi's", "Van Heusen", "Jack & Jones"):
        base = base * 1.4 + 500
    price = price_end(base)
    colour = r.choice(COLOURS)
    specs = {"type": kind, "gender": gender, "sizes": sizes, "material": material, "fit": fit,
             "care": r.choice(["Machine Wash", "Hand Wash", "Dry Clean Only"]),
             "pattern": r.choice(["Solid", "Striped", "Checked", "Printed"]), "colour": colour}
    title = "%s %s's %s %s %s (%s)" % (brand, gender, specs["pattern"], fit, kind, colour)
    keys = [material, fit, "Sizes " + (sizes[0] + "-" + sizes[-1] if len(sizes) > 1 else sizes[0])]
    return brand, title, price, specs, keys, kind.lower()


MAKERS = {"phones": phone, "laptops": laptop, "headphones": headphone, "shoes": shoe,
          "clothing": clothing}


def products(r):
    out, n, titles = [], 0, set()
    for cat in ("phones", "laptops", "headphones", "shoes", "clothing"):
        for i in range(COUNTS[cat]):
            n += 1
            brand, title, price, specs, keys, sub = MAKERS[cat](r, i)
            while title in titles:  # one title, one product: answers can be checked by title
                brand, title, price, specs, keys, sub = MAKERS[cat](r, i)
            titles.add(title)
            mrp = price_end(price * r.uniform(1.0, 1.6)) if r.random() < 0.8 else price
            pid = "P%05d" % n
            out.append({"kind": "product", "id": pid, "category": cat, "subcategory": sub,
                        "brand": brand, "title": title, "price": price, "mrp": max(mrp, price),
                        "currency": "INR", "rating": round(r.uniform(3.0, 4.9), 1),
                        "reviews": int(r.random() ** 3 * 40000) + r.randint(0, 50),
                        "image": "/catalog/images/%s.svg" % pid, "key_specs": keys,
                        "specs": specs, "warranty_months": r.choice([0, 6, 12, 12, 24])
                        if cat in ("phones", "laptops", "headphones") else 0,
                        "returnable_days": r.choice([7, 10, 15, 30])})
    return out


POLICIES = [
    ("returns", "Returns", "Most items can be returned within 7 to 30 days of delivery; the window "
     "is shown on each product page.", "Items must be unused, in the original packaging, with "
     "tags and accessories. Phones and laptops are eligible for a replacement only, within 7 "
     "days, if they arrive damaged or defective. Innerwear, personal care and customised items "
     "cannot be returned. Pickup is free; the refund starts once the item passes a quality check."),
    ("refunds", "Refunds", "Refunds go back to the original payment method within 5 to 7 business "
     "days of the return passing its quality check.", "UPI and wallet refunds usually arrive within "
     "24 hours; cards take 5 to 7 business days; cash-on-delivery orders are refunded to a bank "
     "account or as store credit."),
    ("warranty", "Warranty", "Electronics carry the manufacturer's warranty (usually 12 months) "
     "from the invoice date.", "Claims are handled by the brand's authorised service centres with "
     "the invoice emailed at dispatch. Physical and liquid damage is not covered. Extended "
     "warranty plans of 1 or 2 years can be added at checkout for phones and laptops."),
    ("cancellation", "Cancellation", "An order can be cancelled free of charge until it is "
     "shipped.", "After shipping, refuse the delivery or request a return. Prepaid amounts of "
     "cancelled orders are refunded within 5 to 7 business days."),
    ("delivery", "Delivery", "Standard delivery takes 2 to 7 days depending on the pincode; "
     "delivery is free on orders above ₹499.", "Orders below ₹499 pay a ₹40 delivery fee. Express "
     "delivery (next day) is available in metro pincodes for ₹99. Large appliances are delivered "
     "in a scheduled slot."),
    ("exchange", "Exchange", "Shoes and clothing can be exchanged for another size or colour "
     "within 10 days of delivery.", "The replacement is delivered when the original is picked up; "
     "an exchange is possible once per order item."),
    ("cod", "Cash on delivery", "Cash on delivery is available for orders up to ₹50,000 in most "
     "pincodes.", "A ₹20 handling fee applies. UPI can be used at the door. Some pincodes and "
     "high-value electronics are prepaid only."),
    ("emi", "EMI", "No-cost EMI of 3 to 9 months is available on orders above ₹3,000 with major "
     "credit cards.", "Standard EMI up to 24 months is offered by partner banks; interest and the "
     "processing fee are set by the bank."),
    ("price_match", "Price drop", "If the price drops within 7 days of your order, the difference "
     "is not refunded.", "Prices change with offers and stock; the price at checkout is final."),
]


def policies():
    return [{"kind": "policy", "topic": t, "title": title, "summary": s, "text": s + " " + d,
             "updated": "2026-01-01"} for t, title, s, d in POLICIES]


def orders(r, prods):
    statuses = ["placed", "packed", "shipped", "shipped", "out_for_delivery", "delivered",
                "delivered", "delivered", "cancelled", "returned"]
    cities = [("Bengaluru", "560001"), ("Mumbai", "400001"), ("Delhi", "110001"),
              ("Chennai", "600001"), ("Kolkata", "700001"), ("Hyderabad", "500001"),
              ("Pune", "411001"), ("Jaipur", "302001"), ("Lucknow", "226001"),
              ("Guwahati", "781001")]
    out, seen = [], set()
    ids = ["1234-5678"]
    while len(ids) < 600:
        oid = "%04d-%04d" % (r.randint(1000, 9999), r.randint(0, 9999))
        if oid not in ids:
            ids.append(oid)
    for n, oid in enumerate(ids):
        seen.add(oid)
        items = []
        for p in r.sample(prods, r.choice([1, 1, 1, 2, 3])):
            items.append({"product_id": p["id"], "title": p["title"], "qty": r.choice([1, 1, 2]),
                          "price": p["price"]})
        status = "shipped" if n == 0 else r.choice(statuses)
        day = r.randint(1, 25)
        month = r.choice([10, 11])
        city, pin = r.choice(cities)
        o = {"kind": "order", "id": oid, "status": status,
             "placed_at": "2026-%02d-%02dT%02d:%02d:00+05:30" % (month, day, r.randint(8, 22),
                                                                 r.randint(0, 59)),
             "items": items, "total": sum(i["qty"] * i["price"] for i in items), "currency": "INR",
             "payment": r.choice(["UPI", "Credit Card", "Debit Card", "Cash on Delivery", "EMI"]),
             "ship_to": {"city": city, "pincode": pin}}
        if status in ("shipped", "out_for_delivery", "placed", "packed"):
            o["expected_delivery"] = "2026-%02d-%02d" % (month, min(28, day + r.randint(2, 6)))
        if status in ("shipped", "out_for_delivery", "delivered"):
            o["carrier"] = r.choice(["Ekart", "Delhivery", "Blue Dart", "Shadowfax"])
            o["tracking_id"] = "TRK%010d" % r.randint(0, 9999999999)
        if status == "delivered":
            o["delivered_at"] = "2026-%02d-%02d" % (month, min(28, day + r.randint(1, 5)))
        out.append(o)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "catalog.jsonl"))
    args = ap.parse_args()
    r = random.Random(args.seed)
    prods = products(r)
    lines = prods + policies() + orders(r, prods)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for obj in lines:
            f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
