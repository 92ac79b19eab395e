"""Built-in taxonomies and a single entry point, :func:`get_taxonomy`.

Unless stated otherwise, fine ids follow the dataset's official class order
(restricted to the classes a taxonomy keeps), so built-ins are already
aligned with the standard label encodings of Fashion-MNIST, CIFAR-10/100
and MNIST-style digits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from coarse2fine.data.taxonomy.hierarchy import Taxonomy

# ----------------------------------------------------------- class name lists

FASHION_MNIST_CLASSES: tuple[str, ...] = (
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

CIFAR10_CLASSES: tuple[str, ...] = (
  "airplane", "automobile", "bird", "cat", "deer",
  "dog", "frog", "horse", "ship", "truck",
)

# Standard (alphabetical) CIFAR-100 label order; tree names use the tfds "_tree" suffix.
CIFAR100_CLASSES: tuple[str, ...] = (
  "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
  "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
  "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
  "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
  "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
  "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
  "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
  "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
  "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
  "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

DIGITS_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

# Stanford Cars (Cars196) in devkit order: tfds `cars196` label k (0-based) = CARS196_CLASSES[k].
CARS196_CLASSES: tuple[str, ...] = (
  "AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008",
  "Acura TSX Sedan 2012", "Acura Integra Type R 2001", "Acura ZDX Hatchback 2012",
  "Aston Martin V8 Vantage Convertible 2012", "Aston Martin V8 Vantage Coupe 2012",
  "Aston Martin Virage Convertible 2012", "Aston Martin Virage Coupe 2012", "Audi RS 4 Convertible 2008",
  "Audi A5 Coupe 2012", "Audi TTS Coupe 2012", "Audi R8 Coupe 2012", "Audi V8 Sedan 1994", "Audi 100 Sedan 1994",
  "Audi 100 Wagon 1994", "Audi TT Hatchback 2011", "Audi S6 Sedan 2011", "Audi S5 Convertible 2012",
  "Audi S5 Coupe 2012", "Audi S4 Sedan 2012", "Audi S4 Sedan 2007", "Audi TT RS Coupe 2012",
  "BMW ActiveHybrid 5 Sedan 2012", "BMW 1 Series Convertible 2012", "BMW 1 Series Coupe 2012",
  "BMW 3 Series Sedan 2012", "BMW 3 Series Wagon 2012", "BMW 6 Series Convertible 2007", "BMW X5 SUV 2007",
  "BMW X6 SUV 2012", "BMW M3 Coupe 2012", "BMW M5 Sedan 2010", "BMW M6 Convertible 2010", "BMW X3 SUV 2012",
  "BMW Z4 Convertible 2012", "Bentley Continental Supersports Conv. Convertible 2012", "Bentley Arnage Sedan 2009",
  "Bentley Mulsanne Sedan 2011", "Bentley Continental GT Coupe 2012", "Bentley Continental GT Coupe 2007",
  "Bentley Continental Flying Spur Sedan 2007", "Bugatti Veyron 16.4 Convertible 2009",
  "Bugatti Veyron 16.4 Coupe 2009", "Buick Regal GS 2012", "Buick Rainier SUV 2007", "Buick Verano Sedan 2012",
  "Buick Enclave SUV 2012", "Cadillac CTS-V Sedan 2012", "Cadillac SRX SUV 2012", "Cadillac Escalade EXT Crew Cab 2007",
  "Chevrolet Silverado 1500 Hybrid Crew Cab 2012", "Chevrolet Corvette Convertible 2012", "Chevrolet Corvette ZR1 2012",
  "Chevrolet Corvette Ron Fellows Edition Z06 2007", "Chevrolet Traverse SUV 2012", "Chevrolet Camaro Convertible 2012",
  "Chevrolet HHR SS 2010", "Chevrolet Impala Sedan 2007", "Chevrolet Tahoe Hybrid SUV 2012",
  "Chevrolet Sonic Sedan 2012", "Chevrolet Express Cargo Van 2007", "Chevrolet Avalanche Crew Cab 2012",
  "Chevrolet Cobalt SS 2010", "Chevrolet Malibu Hybrid Sedan 2010", "Chevrolet TrailBlazer SS 2009",
  "Chevrolet Silverado 2500HD Regular Cab 2012", "Chevrolet Silverado 1500 Classic Extended Cab 2007",
  "Chevrolet Express Van 2007", "Chevrolet Monte Carlo Coupe 2007", "Chevrolet Malibu Sedan 2007",
  "Chevrolet Silverado 1500 Extended Cab 2012", "Chevrolet Silverado 1500 Regular Cab 2012", "Chrysler Aspen SUV 2009",
  "Chrysler Sebring Convertible 2010", "Chrysler Town and Country Minivan 2012", "Chrysler 300 SRT-8 2010",
  "Chrysler Crossfire Convertible 2008", "Chrysler PT Cruiser Convertible 2008", "Daewoo Nubira Wagon 2002",
  "Dodge Caliber Wagon 2012", "Dodge Caliber Wagon 2007", "Dodge Caravan Minivan 1997",
  "Dodge Ram Pickup 3500 Crew Cab 2010", "Dodge Ram Pickup 3500 Quad Cab 2009", "Dodge Sprinter Cargo Van 2009",
  "Dodge Journey SUV 2012", "Dodge Dakota Crew Cab 2010", "Dodge Dakota Club Cab 2007", "Dodge Magnum Wagon 2008",
  "Dodge Challenger SRT8 2011", "Dodge Durango SUV 2012", "Dodge Durango SUV 2007", "Dodge Charger Sedan 2012",
  "Dodge Charger SRT-8 2009", "Eagle Talon Hatchback 1998", "FIAT 500 Abarth 2012", "FIAT 500 Convertible 2012",
  "Ferrari FF Coupe 2012", "Ferrari California Convertible 2012", "Ferrari 458 Italia Convertible 2012",
  "Ferrari 458 Italia Coupe 2012", "Fisker Karma Sedan 2012", "Ford F-450 Super Duty Crew Cab 2012",
  "Ford Mustang Convertible 2007", "Ford Freestar Minivan 2007", "Ford Expedition EL SUV 2009", "Ford Edge SUV 2012",
  "Ford Ranger SuperCab 2011", "Ford GT Coupe 2006", "Ford F-150 Regular Cab 2012", "Ford F-150 Regular Cab 2007",
  "Ford Focus Sedan 2007", "Ford E-Series Wagon Van 2012", "Ford Fiesta Sedan 2012", "GMC Terrain SUV 2012",
  "GMC Savana Van 2012", "GMC Yukon Hybrid SUV 2012", "GMC Acadia SUV 2012", "GMC Canyon Extended Cab 2012",
  "Geo Metro Convertible 1993", "HUMMER H3T Crew Cab 2010", "HUMMER H2 SUT Crew Cab 2009", "Honda Odyssey Minivan 2012",
  "Honda Odyssey Minivan 2007", "Honda Accord Coupe 2012", "Honda Accord Sedan 2012", "Hyundai Veloster Hatchback 2012",
  "Hyundai Santa Fe SUV 2012", "Hyundai Tucson SUV 2012", "Hyundai Veracruz SUV 2012",
  "Hyundai Sonata Hybrid Sedan 2012", "Hyundai Elantra Sedan 2007", "Hyundai Accent Sedan 2012",
  "Hyundai Genesis Sedan 2012", "Hyundai Sonata Sedan 2012", "Hyundai Elantra Touring Hatchback 2012",
  "Hyundai Azera Sedan 2012", "Infiniti G Coupe IPL 2012", "Infiniti QX56 SUV 2011", "Isuzu Ascender SUV 2008",
  "Jaguar XK XKR 2012", "Jeep Patriot SUV 2012", "Jeep Wrangler SUV 2012", "Jeep Liberty SUV 2012",
  "Jeep Grand Cherokee SUV 2012", "Jeep Compass SUV 2012", "Lamborghini Reventon Coupe 2008",
  "Lamborghini Aventador Coupe 2012", "Lamborghini Gallardo LP 570-4 Superleggera 2012",
  "Lamborghini Diablo Coupe 2001", "Land Rover Range Rover SUV 2012", "Land Rover LR2 SUV 2012",
  "Lincoln Town Car Sedan 2011", "MINI Cooper Roadster Convertible 2012", "Maybach Landaulet Convertible 2012",
  "Mazda Tribute SUV 2011", "McLaren MP4-12C Coupe 2012", "Mercedes-Benz 300-Class Convertible 1993",
  "Mercedes-Benz C-Class Sedan 2012", "Mercedes-Benz SL-Class Coupe 2009", "Mercedes-Benz E-Class Sedan 2012",
  "Mercedes-Benz S-Class Sedan 2012", "Mercedes-Benz Sprinter Van 2012", "Mitsubishi Lancer Sedan 2012",
  "Nissan Leaf Hatchback 2012", "Nissan NV Passenger Van 2012", "Nissan Juke Hatchback 2012", "Nissan 240SX Coupe 1998",
  "Plymouth Neon Coupe 1999", "Porsche Panamera Sedan 2012", "Ram C/V Cargo Van Minivan 2012",
  "Rolls-Royce Phantom Drophead Coupe Convertible 2012", "Rolls-Royce Ghost Sedan 2012",
  "Rolls-Royce Phantom Sedan 2012", "Scion xD Hatchback 2012", "Spyker C8 Convertible 2009", "Spyker C8 Coupe 2009",
  "Suzuki Aerio Sedan 2007", "Suzuki Kizashi Sedan 2012", "Suzuki SX4 Hatchback 2012", "Suzuki SX4 Sedan 2012",
  "Tesla Model S Sedan 2012", "Toyota Sequoia SUV 2012", "Toyota Camry Sedan 2012", "Toyota Corolla Sedan 2012",
  "Toyota 4Runner SUV 2012", "Volkswagen Golf Hatchback 2012", "Volkswagen Golf Hatchback 1991",
  "Volkswagen Beetle Hatchback 2012", "Volvo C30 Hatchback 2012", "Volvo 240 Sedan 1993", "Volvo XC90 SUV 2007",
  "smart fortwo Convertible 2012",
)

# CIFAR-SI: fraction of each CIFAR-100 fine class (indexed by fine id) kept
# when building the class-imbalanced CIFAR-SI variant.
CIFAR_SI_KEEP: tuple[float, ...] = (
  .57375399, .61887877, .49827284, .61363604, .70610113, .84783802, .68711689, .9519748, .88483212, .85602336,
  .73676322, .5784213, .34717017, .47788748, .42177804, .61173724, .65665981, .5644105, .79943416, .69019384,
  .85861546, .84061074, .5655741, .52854164, .87284635, .44738893, .38830181, .63654859, .84592266, .45378019,
  .59191851, .37450617, .97042908, .40045453, .50140883, .82288002, .76198367, .65541795, .52453847, .47314545,
  .96185752, .91658886, .49564212, .84868512, .91926797, .70796942, .83786135, .33228417, .32755937, .75536667,
  .3939889, .72539474, .74988883, .40057496, .77408639, .89928709, .3173045, .63207938, .52763706, .4150968,
  .97584858, .33739184, .88057277, .33795859, .93550844, .69919175, .69305501, .33304447, .83976966, .48514858,
  .49979666, .3912749, .68442045, .43216038, .4289422, .63583394, .59675707, .80642398, .42701694, .69398926,
  .45437665, .98812622, .98534736, .54456234, .97894244, .86929247, .7191352, .70135236, .65428483, .82100301,
  .89086774, .72972202, .64628091, .32348358, .76580364, .80736886, .50139469, .65188098, .59059803, .36106552,
)

# CIFAR-100 fine ids dropped to form CIFAR68 (from the 100-class T1 hierarchy).
CIFAR68_REMOVED: tuple[int, ...] = (
  0, 2, 7, 9, 11, 15, 16, 21, 22, 25, 26, 27, 30, 40, 42, 45,
  47, 49, 50, 51, 57, 61, 70, 72, 81, 85, 88, 89, 90, 93, 94, 95,
)

# ---------------------------------------------------------------- groupings
# Each grouping is coarse name -> fine names, with coarse ids in dict order.

_FMNIST3 = {
  "Tops": ["T-shirt/top", "Pullover", "Coat", "Shirt"],
  "Footwear": ["Sandal", "Sneaker", "Ankle boot"],
  "Other": ["Trouser", "Dress", "Bag"],
}

# Every class its own coarse class: sub-class discovery below the 10 labels (FALCON's paper, section 5;
# configs/falcon_subclasses_fashion_mnist.py), with data.hide_fine_labels since no finer labels exist.
_FMNIST10 = {name: [name] for name in FASHION_MNIST_CLASSES}

_FMNIST_SEASONS = {
  "Summer": ["T-shirt/top", "Shirt", "Dress", "Sandal"],
  "Winter": ["Pullover", "Coat", "Ankle boot"],
  "Everyday": ["Trouser", "Sneaker", "Bag"],
}

# CIFAR-toy: two coarse classes of four CIFAR-10 classes each; deer and frog
# are not in the taxonomy, so align() maps them to -1 and their examples are dropped.
# "good" groups vehicles vs. animals (a semantically coherent split).
_CIFARTOY_GOOD = {
  "toy_a": ["airplane", "automobile", "ship", "truck"],
  "toy_b": ["bird", "cat", "dog", "horse"],
}
# "bad" mixes vehicles and animals in each group, as in the official code
# (toy_a = CIFAR-10 ids [0, 1, 5, 3], toy_b = [8, 9, 2, 7]).
_CIFARTOY_BAD = {
  "toy_a": ["airplane", "automobile", "dog", "cat"],
  "toy_b": ["ship", "truck", "bird", "horse"],
}

# The 20 official CIFAR-100 superclasses.
_CIFAR100_T1 = {
  "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
  "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
  "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
  "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
  "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
  "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
  "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
  "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
  "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
  "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
  "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
  "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
  "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
  "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
  "people": ["baby", "boy", "girl", "man", "woman"],
  "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
  "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
  "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
  "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
  "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}

# FALCON's alternative 20-way grouping of the same 100 classes.
_CIFAR100_T2 = {
  "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
  "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
  "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
  "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
  "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
  "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
  "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
  "invertebrates": ["bee", "beetle", "butterfly", "caterpillar", "worm"],
  "hard_shell_animals": ["crab", "lobster", "snail", "turtle", "cockroach"],
  "small_aquatic_animals": ["aquarium_fish", "flatfish", "ray", "trout", "otter"],
  "large_aquatic_animals": ["beaver", "dolphin", "seal", "crocodile", "shark"],
  "outdoor_scenes_2": ["cloud", "sea", "bridge", "road", "skyscraper"],
  "outdoor_scenes_1": ["forest", "mountain", "plain", "castle", "house"],
  "large_animals": ["camel", "cattle", "elephant", "whale", "dinosaur"],
  "small_mammals": ["shrew", "squirrel", "mouse", "baby", "raccoon"],
  "medium_mammals": ["fox", "porcupine", "possum", "skunk", "kangaroo"],
  "pets": ["hamster", "rabbit", "lizard", "snake", "spider"],
  "primates": ["chimpanzee", "boy", "girl", "man", "woman"],
  "personal_vehicles": ["bicycle", "motorcycle", "lawn_mower", "pickup_truck", "streetcar"],
  "transit_vehicles": ["rocket", "tank", "tractor", "bus", "train"],
}

# Digits grouped by the dominant stroke shape of their usual handwritten form:
# closed loops (round), mostly straight strokes, and open curves.
_DIGITS_SHAPES = {
  "round": ["0", "6", "8", "9"],
  "straight": ["1", "4", "7"],
  "curvy": ["2", "3", "5"],
}


# MaskCon's 8 car types over the 196 Cars196 classes (official code's `_cars_mapping`; docs/datasets.md#cars196):
# fine ids in devkit order, 18/50/36/30/29/14/6/13 per type. The paper counts 7 wagons and 12 vans; the code puts
# "Ford E-Series Wagon Van 2012" (id 115) among the vans, and so do we.
CARS196_8_IDS: dict[str, tuple[int, ...]] = {
  "cab": (52, 53, 64, 68, 69, 73, 74, 85, 86, 89, 90, 105, 110, 112, 113, 121, 123, 124),
  "sedan": (1, 2, 3, 4, 15, 16, 19, 22, 23, 25, 28, 34, 39, 40, 43, 46, 48, 50, 60, 62, 66, 72, 78, 95, 96, 104,
            114, 116, 128, 133, 134, 135, 136, 137, 139, 155, 161, 163, 164, 166, 172, 175, 176, 180, 181, 183, 184,
            186, 187, 193),
  "SUV": (0, 31, 32, 36, 47, 49, 51, 57, 59, 61, 67, 75, 88, 93, 94, 108, 109, 117, 119, 120, 130, 131, 132, 141,
          142, 144, 145, 146, 147, 148, 153, 154, 158, 185, 188, 194),
  "convertible": (7, 9, 11, 20, 26, 30, 35, 37, 38, 44, 54, 55, 56, 58, 76, 79, 80, 99, 101, 102, 106, 122, 143,
                  151, 156, 157, 160, 174, 178, 195),
  "coupe": (5, 8, 10, 12, 13, 14, 21, 24, 27, 33, 41, 42, 45, 65, 71, 92, 100, 103, 111, 127, 140, 149, 150, 152,
            159, 162, 170, 171, 179),
  "hatchback": (6, 18, 97, 98, 129, 138, 167, 169, 177, 182, 189, 190, 191, 192),
  "wagon": (17, 29, 81, 82, 83, 91),
  "van": (63, 70, 77, 84, 87, 107, 115, 118, 125, 126, 165, 168, 173),
}
_CARS196_8 = {coarse: [CARS196_CLASSES[i] for i in ids] for coarse, ids in CARS196_8_IDS.items()}


def _in_order(classes: Sequence[str], groups: dict[str, list[str]]) -> list[str]:
  """The dataset classes that ``groups`` uses, in dataset order (= fine id order)."""
  used = {f for members in groups.values() for f in members}
  return [c for c in classes if c in used]


def _builder(name: str, classes: Sequence[str], groups: dict[str, list[str]]) -> Callable[[], Taxonomy]:
  """A zero-argument factory so built-ins are only constructed when requested."""
  return lambda: Taxonomy.from_groups(name, groups, fine_order=_in_order(classes, groups))


def _cifar68() -> Taxonomy:
  """CIFAR-100 T1 without the ``CIFAR68_REMOVED`` fine ids; 68 classes kept in id order."""
  removed = {CIFAR100_CLASSES[i] for i in CIFAR68_REMOVED}
  keep = [c for c in CIFAR100_CLASSES if c not in removed]
  return BUILTIN_TAXONOMIES["cifar100_t1"]().subset(keep, name="cifar68")


BUILTIN_TAXONOMIES: dict[str, Callable[[], Taxonomy]] = {
  "fmnist3": _builder("fmnist3", FASHION_MNIST_CLASSES, _FMNIST3),
  "fmnist_seasons": _builder("fmnist_seasons", FASHION_MNIST_CLASSES, _FMNIST_SEASONS),
  "fmnist10": _builder("fmnist10", FASHION_MNIST_CLASSES, _FMNIST10),
  "cifartoy_good": _builder("cifartoy_good", CIFAR10_CLASSES, _CIFARTOY_GOOD),
  "cifartoy_bad": _builder("cifartoy_bad", CIFAR10_CLASSES, _CIFARTOY_BAD),
  "cifar100": _builder("cifar100", CIFAR100_CLASSES, _CIFAR100_T1),
  "cifar100_t1": _builder("cifar100_t1", CIFAR100_CLASSES, _CIFAR100_T1),
  "cifar100_t2": _builder("cifar100_t2", CIFAR100_CLASSES, _CIFAR100_T2),
  "cifar68": _cifar68,
  "digits_shapes": _builder("digits_shapes", DIGITS_CLASSES, _DIGITS_SHAPES),
  "cars196_8": _builder("cars196_8", CARS196_CLASSES, _CARS196_8),
}


def cifar_si_keep() -> np.ndarray:
  """CIFAR-SI keep fractions as float64 ``[100]`` indexed by CIFAR-100 fine id."""
  return np.asarray(CIFAR_SI_KEEP, dtype=np.float64)


def get_taxonomy(
  spec: str, dataset_fine_names: Sequence[str] | None = None
) -> Taxonomy | tuple[Taxonomy, np.ndarray]:
  """Resolve a built-in name or a ``.json``/``.csv``/``.txt`` path to a taxonomy.

  With ``dataset_fine_names``, returns ``taxonomy.align(dataset_fine_names)``,
  i.e. ``(aligned_taxonomy, index_map)`` with int32 ``index_map`` of shape
  ``[len(dataset_fine_names)]`` (-1 = class not in the taxonomy).
  """
  if spec in BUILTIN_TAXONOMIES:
    taxonomy = BUILTIN_TAXONOMIES[spec]()
  elif Path(spec).suffix.lower() in (".json", ".csv", ".txt"):
    taxonomy = Taxonomy.from_file(spec)
  else:
    raise ValueError(
      f"Unknown taxonomy {spec!r}. Use one of the built-ins "
      f"({', '.join(sorted(BUILTIN_TAXONOMIES))}) or a path to a .json, .csv or .txt file."
    )
  if dataset_fine_names is None:
    return taxonomy
  return taxonomy.align(dataset_fine_names)


# ----------------------------------------------------------- CUB-200-2011
# Appended as a block (classes, groupings, built-ins) so the tables above stay untouched.

# CUB-200-2011 species in `classes.txt` order (the image folder names): tfds `caltech_birds2011` label k
# (0-based) = CUB200_CLASSES[k]. The spellings are the dataset's own, slips included ("Artic_Tern").
CUB200_CLASSES: tuple[str, ...] = (
  "001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross", "004.Groove_billed_Ani",
  "005.Crested_Auklet", "006.Least_Auklet", "007.Parakeet_Auklet", "008.Rhinoceros_Auklet",
  "009.Brewer_Blackbird", "010.Red_winged_Blackbird", "011.Rusty_Blackbird", "012.Yellow_headed_Blackbird",
  "013.Bobolink", "014.Indigo_Bunting", "015.Lazuli_Bunting", "016.Painted_Bunting", "017.Cardinal",
  "018.Spotted_Catbird", "019.Gray_Catbird", "020.Yellow_breasted_Chat", "021.Eastern_Towhee",
  "022.Chuck_will_Widow", "023.Brandt_Cormorant", "024.Red_faced_Cormorant", "025.Pelagic_Cormorant",
  "026.Bronzed_Cowbird", "027.Shiny_Cowbird", "028.Brown_Creeper", "029.American_Crow", "030.Fish_Crow",
  "031.Black_billed_Cuckoo", "032.Mangrove_Cuckoo", "033.Yellow_billed_Cuckoo", "034.Gray_crowned_Rosy_Finch",
  "035.Purple_Finch", "036.Northern_Flicker", "037.Acadian_Flycatcher", "038.Great_Crested_Flycatcher",
  "039.Least_Flycatcher", "040.Olive_sided_Flycatcher", "041.Scissor_tailed_Flycatcher",
  "042.Vermilion_Flycatcher", "043.Yellow_bellied_Flycatcher", "044.Frigatebird", "045.Northern_Fulmar",
  "046.Gadwall", "047.American_Goldfinch", "048.European_Goldfinch", "049.Boat_tailed_Grackle",
  "050.Eared_Grebe", "051.Horned_Grebe", "052.Pied_billed_Grebe", "053.Western_Grebe", "054.Blue_Grosbeak",
  "055.Evening_Grosbeak", "056.Pine_Grosbeak", "057.Rose_breasted_Grosbeak", "058.Pigeon_Guillemot",
  "059.California_Gull", "060.Glaucous_winged_Gull", "061.Heermann_Gull", "062.Herring_Gull", "063.Ivory_Gull",
  "064.Ring_billed_Gull", "065.Slaty_backed_Gull", "066.Western_Gull", "067.Anna_Hummingbird",
  "068.Ruby_throated_Hummingbird", "069.Rufous_Hummingbird", "070.Green_Violetear", "071.Long_tailed_Jaeger",
  "072.Pomarine_Jaeger", "073.Blue_Jay", "074.Florida_Jay", "075.Green_Jay", "076.Dark_eyed_Junco",
  "077.Tropical_Kingbird", "078.Gray_Kingbird", "079.Belted_Kingfisher", "080.Green_Kingfisher",
  "081.Pied_Kingfisher", "082.Ringed_Kingfisher", "083.White_breasted_Kingfisher", "084.Red_legged_Kittiwake",
  "085.Horned_Lark", "086.Pacific_Loon", "087.Mallard", "088.Western_Meadowlark", "089.Hooded_Merganser",
  "090.Red_breasted_Merganser", "091.Mockingbird", "092.Nighthawk", "093.Clark_Nutcracker",
  "094.White_breasted_Nuthatch", "095.Baltimore_Oriole", "096.Hooded_Oriole", "097.Orchard_Oriole",
  "098.Scott_Oriole", "099.Ovenbird", "100.Brown_Pelican", "101.White_Pelican", "102.Western_Wood_Pewee",
  "103.Sayornis", "104.American_Pipit", "105.Whip_poor_Will", "106.Horned_Puffin", "107.Common_Raven",
  "108.White_necked_Raven", "109.American_Redstart", "110.Geococcyx", "111.Loggerhead_Shrike",
  "112.Great_Grey_Shrike", "113.Baird_Sparrow", "114.Black_throated_Sparrow", "115.Brewer_Sparrow",
  "116.Chipping_Sparrow", "117.Clay_colored_Sparrow", "118.House_Sparrow", "119.Field_Sparrow",
  "120.Fox_Sparrow", "121.Grasshopper_Sparrow", "122.Harris_Sparrow", "123.Henslow_Sparrow",
  "124.Le_Conte_Sparrow", "125.Lincoln_Sparrow", "126.Nelson_Sharp_tailed_Sparrow", "127.Savannah_Sparrow",
  "128.Seaside_Sparrow", "129.Song_Sparrow", "130.Tree_Sparrow", "131.Vesper_Sparrow",
  "132.White_crowned_Sparrow", "133.White_throated_Sparrow", "134.Cape_Glossy_Starling", "135.Bank_Swallow",
  "136.Barn_Swallow", "137.Cliff_Swallow", "138.Tree_Swallow", "139.Scarlet_Tanager", "140.Summer_Tanager",
  "141.Artic_Tern", "142.Black_Tern", "143.Caspian_Tern", "144.Common_Tern", "145.Elegant_Tern",
  "146.Forsters_Tern", "147.Least_Tern", "148.Green_tailed_Towhee", "149.Brown_Thrasher", "150.Sage_Thrasher",
  "151.Black_capped_Vireo", "152.Blue_headed_Vireo", "153.Philadelphia_Vireo", "154.Red_eyed_Vireo",
  "155.Warbling_Vireo", "156.White_eyed_Vireo", "157.Yellow_throated_Vireo", "158.Bay_breasted_Warbler",
  "159.Black_and_white_Warbler", "160.Black_throated_Blue_Warbler", "161.Blue_winged_Warbler",
  "162.Canada_Warbler", "163.Cape_May_Warbler", "164.Cerulean_Warbler", "165.Chestnut_sided_Warbler",
  "166.Golden_winged_Warbler", "167.Hooded_Warbler", "168.Kentucky_Warbler", "169.Magnolia_Warbler",
  "170.Mourning_Warbler", "171.Myrtle_Warbler", "172.Nashville_Warbler", "173.Orange_crowned_Warbler",
  "174.Palm_Warbler", "175.Pine_Warbler", "176.Prairie_Warbler", "177.Prothonotary_Warbler",
  "178.Swainson_Warbler", "179.Tennessee_Warbler", "180.Wilson_Warbler", "181.Worm_eating_Warbler",
  "182.Yellow_Warbler", "183.Northern_Waterthrush", "184.Louisiana_Waterthrush", "185.Bohemian_Waxwing",
  "186.Cedar_Waxwing", "187.American_Three_toed_Woodpecker", "188.Pileated_Woodpecker",
  "189.Red_bellied_Woodpecker", "190.Red_cockaded_Woodpecker", "191.Red_headed_Woodpecker",
  "192.Downy_Woodpecker", "193.Bewick_Wren", "194.Cactus_Wren", "195.Carolina_Wren", "196.House_Wren",
  "197.Marsh_Wren", "198.Rock_Wren", "199.Winter_Wren", "200.Common_Yellowthroat",
)

# The dataset ships no coarse level. `cub200_flat` puts every species under one class, for methods trained on
# the 200 species (F-SC's CUB benchmark); `cub200_orders` groups them by taxonomic order (our grouping, from the
# species, not from any of our sources; cormorants and frigatebirds in Suliformes as in current checklists).
# Fine ids in classes.txt order, 0-based; 4/5/24/133/3/4/7/4/4/4/5/1/2 species per order.
CUB200_ORDERS_IDS: dict[str, tuple[int, ...]] = {
  "Procellariiformes": (0, 1, 2, 44),  # albatrosses, fulmar
  "Cuculiformes": (3, 30, 31, 32, 109),  # ani, cuckoos, roadrunner (Geococcyx)
  "Charadriiformes": (4, 5, 6, 7, 57, 58, 59, 60, 61, 62, 63, 64, 65, 70, 71, 83, 105, 140, 141, 142, 143, 144,
                      145, 146),  # auklets, guillemot, gulls, jaegers, kittiwake, puffin, terns
  "Passeriformes": (*range(8, 21), *range(25, 30), 33, 34, *range(36, 43), 46, 47, 48, 53, 54, 55, 56,
                    *range(72, 78), 84, 87, 90, *range(92, 99), 101, 102, 103, 106, 107, 108, *range(110, 140),
                    *range(147, 186), *range(192, 200)),
  "Caprimulgiformes": (21, 91, 104),  # chuck-will's-widow, nighthawk, whip-poor-will
  "Suliformes": (22, 23, 24, 43),  # cormorants, frigatebird
  "Piciformes": (35, *range(186, 192)),  # flicker, woodpeckers
  "Anseriformes": (45, 86, 88, 89),  # gadwall, mallard, mergansers
  "Podicipediformes": (49, 50, 51, 52),  # grebes
  "Apodiformes": (66, 67, 68, 69),  # hummingbirds (Green Violetear included)
  "Coraciiformes": (78, 79, 80, 81, 82),  # kingfishers
  "Gaviiformes": (85,),  # Pacific Loon
  "Pelecaniformes": (99, 100),  # pelicans
}
_CUB200_FLAT = {"bird": list(CUB200_CLASSES)}
_CUB200_ORDERS = {order: [CUB200_CLASSES[i] for i in ids] for order, ids in CUB200_ORDERS_IDS.items()}

BUILTIN_TAXONOMIES.update({
  "cub200_flat": _builder("cub200_flat", CUB200_CLASSES, _CUB200_FLAT),
  "cub200_orders": _builder("cub200_orders", CUB200_CLASSES, _CUB200_ORDERS),
})
