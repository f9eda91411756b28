"""Denmark's 98 municipalities (kommuner) by their official three-digit kommunekode.

The codes and names are the official list used by Danmarks Statistik and KL (Kommunernes
Landsforening) since the municipal reform of 1 January 2007, grouped here by region. The
list has not changed since then. Christiansø (411) has a code of its own in some registers
but is administered by the state, not a municipality, so it is deliberately absent.

Names are the short forms KL uses ("København", not "Københavns Kommune"). Some systems
(CPR, DAWA) write the code with a leading zero as four digits ("0101"); jobordre always uses
the three-digit form.
"""

from __future__ import annotations

#: Kommunekode -> municipality name: exactly the 98 municipalities, nothing else.
MUNICIPALITIES: dict[str, str] = {
    # Region Hovedstaden (29)
    "101": "København",
    "147": "Frederiksberg",
    "151": "Ballerup",
    "153": "Brøndby",
    "155": "Dragør",
    "157": "Gentofte",
    "159": "Gladsaxe",
    "161": "Glostrup",
    "163": "Herlev",
    "165": "Albertslund",
    "167": "Hvidovre",
    "169": "Høje-Taastrup",
    "173": "Lyngby-Taarbæk",
    "175": "Rødovre",
    "183": "Ishøj",
    "185": "Tårnby",
    "187": "Vallensbæk",
    "190": "Furesø",
    "201": "Allerød",
    "210": "Fredensborg",
    "217": "Helsingør",
    "219": "Hillerød",
    "223": "Hørsholm",
    "230": "Rudersdal",
    "240": "Egedal",
    "250": "Frederikssund",
    "260": "Halsnæs",
    "270": "Gribskov",
    "400": "Bornholm",
    # Region Sjælland (17)
    "253": "Greve",
    "259": "Køge",
    "265": "Roskilde",
    "269": "Solrød",
    "306": "Odsherred",
    "316": "Holbæk",
    "320": "Faxe",
    "326": "Kalundborg",
    "329": "Ringsted",
    "330": "Slagelse",
    "336": "Stevns",
    "340": "Sorø",
    "350": "Lejre",
    "360": "Lolland",
    "370": "Næstved",
    "376": "Guldborgsund",
    "390": "Vordingborg",
    # Region Syddanmark (22)
    "410": "Middelfart",
    "420": "Assens",
    "430": "Faaborg-Midtfyn",
    "440": "Kerteminde",
    "450": "Nyborg",
    "461": "Odense",
    "479": "Svendborg",
    "480": "Nordfyns",
    "482": "Langeland",
    "492": "Ærø",
    "510": "Haderslev",
    "530": "Billund",
    "540": "Sønderborg",
    "550": "Tønder",
    "561": "Esbjerg",
    "563": "Fanø",
    "573": "Varde",
    "575": "Vejen",
    "580": "Aabenraa",
    "607": "Fredericia",
    "621": "Kolding",
    "630": "Vejle",
    # Region Midtjylland (19)
    "615": "Horsens",
    "657": "Herning",
    "661": "Holstebro",
    "665": "Lemvig",
    "671": "Struer",
    "706": "Syddjurs",
    "707": "Norddjurs",
    "710": "Favrskov",
    "727": "Odder",
    "730": "Randers",
    "740": "Silkeborg",
    "741": "Samsø",
    "746": "Skanderborg",
    "751": "Aarhus",
    "756": "Ikast-Brande",
    "760": "Ringkøbing-Skjern",
    "766": "Hedensted",
    "779": "Skive",
    "791": "Viborg",
    # Region Nordjylland (11)
    "773": "Morsø",
    "787": "Thisted",
    "810": "Brønderslev",
    "813": "Frederikshavn",
    "820": "Vesthimmerlands",
    "825": "Læsø",
    "840": "Rebild",
    "846": "Mariagerfjord",
    "849": "Jammerbugt",
    "851": "Aalborg",
    "860": "Hjørring",
}

#: Kommunekode -> real postcodes of towns in that municipality, the main town's first. Not
#: complete: it only has to give the data generator plausible addresses whose postcode and
#: municipality agree. (Postcode areas do not follow municipal borders exactly, so a postcode
#: here may also reach into a neighbouring municipality; it is never *wrong* for this one.)
MUNICIPALITY_POSTCODES: dict[str, tuple[str, ...]] = {
    "101": ("1050", "1620", "2100", "2200", "2400", "2500"),  # København K, V, Ø, N, NV, Valby
    "147": ("2000",),  # Frederiksberg
    "151": ("2750",),  # Ballerup
    "153": ("2605",),  # Brøndby
    "155": ("2791",),  # Dragør
    "157": ("2820",),  # Gentofte
    "159": ("2860",),  # Søborg
    "161": ("2600",),  # Glostrup
    "163": ("2730",),  # Herlev
    "165": ("2620",),  # Albertslund
    "167": ("2650",),  # Hvidovre
    "169": ("2630",),  # Taastrup
    "173": ("2800",),  # Kongens Lyngby
    "175": ("2610",),  # Rødovre
    "183": ("2635",),  # Ishøj
    "185": ("2770",),  # Kastrup
    "187": ("2625",),  # Vallensbæk
    "190": ("3520",),  # Farum
    "201": ("3450",),  # Allerød
    "210": ("3480",),  # Fredensborg
    "217": ("3000",),  # Helsingør
    "219": ("3400",),  # Hillerød
    "223": ("2970",),  # Hørsholm
    "230": ("2840",),  # Holte
    "240": ("3660",),  # Stenløse
    "250": ("3600",),  # Frederikssund
    "260": ("3300",),  # Frederiksværk
    "270": ("3200",),  # Helsinge
    "400": ("3700",),  # Rønne
    "253": ("2670",),  # Greve
    "259": ("4600",),  # Køge
    "265": ("4000",),  # Roskilde
    "269": ("2680",),  # Solrød Strand
    "306": ("4500",),  # Nykøbing Sj
    "316": ("4300",),  # Holbæk
    "320": ("4640",),  # Faxe
    "326": ("4400",),  # Kalundborg
    "329": ("4100",),  # Ringsted
    "330": ("4200",),  # Slagelse
    "336": ("4660",),  # Store Heddinge
    "340": ("4180",),  # Sorø
    "350": ("4320",),  # Lejre
    "360": ("4930", "4900"),  # Maribo, Nakskov
    "370": ("4700",),  # Næstved
    "376": ("4800",),  # Nykøbing F
    "390": ("4760",),  # Vordingborg
    "410": ("5500",),  # Middelfart
    "420": ("5610",),  # Assens
    "430": ("5750", "5600"),  # Ringe, Faaborg
    "440": ("5300",),  # Kerteminde
    "450": ("5800",),  # Nyborg
    "461": ("5000", "5200", "5220"),  # Odense C, V, SØ
    "479": ("5700",),  # Svendborg
    "480": ("5400",),  # Bogense
    "482": ("5900",),  # Rudkøbing
    "492": ("5970",),  # Ærøskøbing
    "510": ("6100",),  # Haderslev
    "530": ("7190",),  # Billund
    "540": ("6400",),  # Sønderborg
    "550": ("6270",),  # Tønder
    "561": ("6700",),  # Esbjerg
    "563": ("6720",),  # Fanø
    "573": ("6800",),  # Varde
    "575": ("6600",),  # Vejen
    "580": ("6200",),  # Aabenraa
    "607": ("7000",),  # Fredericia
    "621": ("6000",),  # Kolding
    "630": ("7100",),  # Vejle
    "615": ("8700",),  # Horsens
    "657": ("7400",),  # Herning
    "661": ("7500",),  # Holstebro
    "665": ("7620",),  # Lemvig
    "671": ("7600",),  # Struer
    "706": ("8400",),  # Ebeltoft
    "707": ("8500",),  # Grenaa
    "710": ("8450", "8370"),  # Hammel, Hadsten
    "727": ("8300",),  # Odder
    "730": ("8900",),  # Randers C
    "740": ("8600",),  # Silkeborg
    "741": ("8305",),  # Samsø
    "746": ("8660",),  # Skanderborg
    "751": ("8000", "8200", "8210", "8220"),  # Aarhus C, N, V, Brabrand
    "756": ("7430", "7330"),  # Ikast, Brande
    "760": ("6950", "6900"),  # Ringkøbing, Skjern
    "766": ("8722",),  # Hedensted
    "779": ("7800",),  # Skive
    "791": ("8800",),  # Viborg
    "773": ("7900",),  # Nykøbing M
    "787": ("7700",),  # Thisted
    "810": ("9700",),  # Brønderslev
    "813": ("9900",),  # Frederikshavn
    "820": ("9600",),  # Aars
    "825": ("9940",),  # Læsø
    "840": ("9530", "9520"),  # Støvring, Skørping
    "846": ("9500",),  # Hobro
    "849": ("9440",),  # Aabybro
    "851": ("9000", "9200", "9220"),  # Aalborg, Aalborg SV, Aalborg Øst
    "860": ("9800",),  # Hjørring
}
