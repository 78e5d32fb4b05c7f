package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SinkhornOptionsTest {
    @Test
    void defaultsAreGeomLossDefaults() {
        SinkhornOptions o = SinkhornOptions.defaults();
        assertEquals(0.05, o.blur());
        assertEquals(0.5, o.scaling());
        assertTrue(o.debias());
        assertTrue(o.halfCost());
        assertEquals(Solver.SYMMETRIC, o.solver());
        assertEquals(null, o.reachX());
    }

    @Test
    void mapRoundTripKeepsEveryOption() {
        SinkhornOptions o = SinkhornOptions.builder().blur(0.1).scaling(0.7).reachX(0.5).reachY(2.0).halfCost(false)
                .eps(0.3).nIters(40).threshold(1e-6).innerIterations(5).solver(Solver.ALTERNATING).debias(false)
                .epsList(new double[] {1, 0.5}).diameter(3.0).geomlossGradients(true).device(Device.CPU).allowTf32(false)
                .lastExtrapolation(false).build();
        SinkhornOptions back = SinkhornOptions.fromMap(o.toMap());
        assertEquals(o, back);
        assertArrayEquals(new double[] {1, 0.5}, back.epsList());
    }

    @Test
    void geomlossSpellingsAreAccepted() {
        SinkhornOptions o = SinkhornOptions.fromMap(Map.of("reach", 0.5, "half_cost", false, "n_iters", 7, "eps", 0.2,
                "solver", "alternating", "inner_iterations", 3));
        assertEquals(0.5, o.reachX());
        assertEquals(0.5, o.reachY());
        assertEquals(7, o.nIters());
        assertEquals(Solver.ALTERNATING, o.solver());
        assertEquals(3, o.innerIterations());
    }

    @Test
    void unknownOptionIsNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SinkhornOptions.fromMap(Map.of("blurr", 0.1)));
        assertTrue(e.getMessage().contains("blurr"), e.getMessage());
    }

    @ParameterizedTest
    @CsvSource({"blur,0", "blur,-1", "blur,NaN", "scaling,0", "scaling,1", "scaling,1.5", "reach,0", "reach,-2",
            "reachX,0", "reachY,NaN", "eps,0", "nIters,0", "diameter,-1", "threshold,-1", "innerIterations,0"})
    void badValuesAreNamed(String option, String value) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SinkhornOptions.fromMap(Map.of(option, Double.parseDouble(value))));
        String expectedName = option.equals("reach") ? "reachX" : option;
        assertTrue(e.getMessage().contains(expectedName), e.getMessage());
    }

    @Test
    void badEnumValueListsTheChoices() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SinkhornOptions.fromMap(Map.of("solver", "newton")));
        assertTrue(e.getMessage().contains("solver") && e.getMessage().contains("alternating"), e.getMessage());
    }
}
