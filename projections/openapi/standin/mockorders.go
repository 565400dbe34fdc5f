package standin

// The documented mock orders (outgoing.md §2.3). KooGallery publishes only
// their ids and scenarios; everything else below (product ids, SKU codes,
// periods, times, amounts, the buyer) is invented but plausible, and
// fixed, so tests can rely on it.
const (
	// MockCustomerID is the buyer of every mock order.
	MockCustomerID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
	// MockProductPeriod is the yearly/monthly product of the PERIOD orders
	// (MOCKPERIODYEARNEW, MOCKPERIODDAYTRIAL and the MOCKMONTY* orders).
	MockProductPeriod = "OFFI000000000000000101"
	// MockProductOneTime, MockProductOnDemand and MockProductOnDemandPkg are
	// the products of the other charging modes.
	MockProductOneTime     = "OFFI000000000000000102"
	MockProductOnDemand    = "OFFI000000000000000103"
	MockProductOnDemandPkg = "OFFI000000000000000104"
	// MockSKUBasic is the basic specification; MockSKUPro the one
	// MOCKMONTYCHANGE changes to.
	MockSKUBasic = "6f1c2a9e-0b1d-4c33-9a51-5f0e2d8b1a01"
	MockSKUPro   = "6f1c2a9e-0b1d-4c33-9a51-5f0e2d8b1a02"
)

// MockOrders returns the nine mock orders of outgoing.md §2.3, in the
// documented order, each with one line "<orderId>-000001":
//
//	orderId                 orderType        chargingMode   period   created         expires         product / sku
//	MOCKPERIODYEARNEW       NEW              PERIOD         year×1   20240601080000  20250601080000  …101 / basic
//	MOCKONETIMENEW          NEW              ONE_TIME       –        20240601080000  –               …102 / basic
//	MOCKONDEMAND            NEW              ON_DEMAND      –        20240601080000  –               …103 / basic
//	MOCKONDEMANDPKG         NEW              ON_DEMAND_PKG  month×1  20240601080000  20240701080000  …104 / basic (100 units)
//	MOCKPERIODDAYTRIAL      TRIAL            PERIOD         day×7    20240601080000  20240608080000  …101 / basic
//	MOCKMONTYTRIALTOFORMAL  TRIAL_TO_FORMAL  PERIOD         month×1  20240607080000  20240708080000  …101 / basic
//	MOCKMONTYUNSUBSCRIBE    UNSUBSCRIBE      PERIOD         month×1  20240610080000  20240610080000  …101 / basic
//	MOCKMONTYRENEW          RENEW            PERIOD         month×1  20240625080000  20240801080000  …101 / basic
//	MOCKMONTYCHANGE         CHANGE           PERIOD         month×1  20240615080000  20240701080000  …101 / pro
//
// All have buyer MockCustomerID and currency CNY.
func MockOrders() []Order {
	mk := func(id, typ, created, mode, periodType string, periodNum int, expires, product, sku, amount string, linear int) Order {
		return Order{
			OrderID: id, OrderType: typ, CreateTime: created,
			OrderLine: []OrderLine{{
				OrderLineID: id + "-000001", ChargingMode: mode, ExpireTime: expires,
				PeriodType: periodType, PeriodNum: periodNum,
				ProductInfo: []ProductInfo{{ProductID: product, SKUCode: sku, ProductName: "Gallerist mock product", LinearValue: linear}},
				Currency:    "CNY", Amount: amount,
			}},
			BuyerInfo: &BuyerInfo{CustomerID: MockCustomerID, CustomerName: "mock-buyer"},
		}
	}
	return []Order{
		mk("MOCKPERIODYEARNEW", "NEW", "20240601080000", "PERIOD", "year", 1, "20250601080000", MockProductPeriod, MockSKUBasic, "1200.00", 0),
		mk("MOCKONETIMENEW", "NEW", "20240601080000", "ONE_TIME", "", 0, "", MockProductOneTime, MockSKUBasic, "300.00", 0),
		mk("MOCKONDEMAND", "NEW", "20240601080000", "ON_DEMAND", "", 0, "", MockProductOnDemand, MockSKUBasic, "", 0),
		mk("MOCKONDEMANDPKG", "NEW", "20240601080000", "ON_DEMAND_PKG", "month", 1, "20240701080000", MockProductOnDemandPkg, MockSKUBasic, "50.00", 100),
		mk("MOCKPERIODDAYTRIAL", "TRIAL", "20240601080000", "PERIOD", "day", 7, "20240608080000", MockProductPeriod, MockSKUBasic, "0.00", 0),
		mk("MOCKMONTYTRIALTOFORMAL", "TRIAL_TO_FORMAL", "20240607080000", "PERIOD", "month", 1, "20240708080000", MockProductPeriod, MockSKUBasic, "100.00", 0),
		mk("MOCKMONTYUNSUBSCRIBE", "UNSUBSCRIBE", "20240610080000", "PERIOD", "month", 1, "20240610080000", MockProductPeriod, MockSKUBasic, "0.00", 0),
		mk("MOCKMONTYRENEW", "RENEW", "20240625080000", "PERIOD", "month", 1, "20240801080000", MockProductPeriod, MockSKUBasic, "100.00", 0),
		mk("MOCKMONTYCHANGE", "CHANGE", "20240615080000", "PERIOD", "month", 1, "20240701080000", MockProductPeriod, MockSKUPro, "50.00", 0),
	}
}
